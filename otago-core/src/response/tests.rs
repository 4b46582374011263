use super::*;
use crate::selection::tests::{manifest_update, request, rollback_update};
use crate::{ProtocolVersion, StoredSignature};

const SIGNATURE: &str = r#"sig="c2lnbmF0dXJl", keyid="main", alg="rsa-v1_5-sha256""#;

fn signed(mut update: PublishedUpdate) -> PublishedUpdate {
    update.body.signature = Some(StoredSignature::parse(SIGNATURE).unwrap());
    update
}

fn prepared(release: impl Into<ChannelRelease>) -> PreparedUpdates {
    PreparedUpdates::new(release.into(), &AssetRequestHeaders::new()).unwrap()
}

/// `target` rolled out to `percentage` over `base`, with its standby.
fn rollout(base: PublishedUpdate, target: PublishedUpdate, percentage: u8) -> ChannelRelease {
    let release = ChannelRelease::from(base);
    let id = crate::UpdateId::from_random_bytes([77; 16]);
    let (kind, bytes) = crate::standby_body(release.base.as_ref(), target.created_at, id).unwrap();
    let standby = crate::standby_update(kind, id, bytes, None).unwrap();
    release.publish(target, percentage, Some(standby)).unwrap()
}

fn assert_common(response: &RenderedResponse, version: &str) {
    assert_eq!(response.header("expo-protocol-version"), Some(version));
    assert_eq!(response.header("expo-sfv-version"), Some("0"));
    assert_eq!(response.header("cache-control"), Some("private, max-age=0"));
}

#[test]
fn manifests_come_in_every_format_and_version() {
    let updates = prepared(signed(manifest_update(1, 10)));
    let bytes = updates.updates().next().unwrap().1.body.bytes.clone();
    for (version, expected) in [(ProtocolVersion::V0, "0"), (ProtocolVersion::V1, "1")] {
        let mut r = request(version);
        let answer = updates.answer(&r).unwrap();
        assert_eq!(answer.kind, DecisionKind::Manifest);
        assert_common(answer.response, expected);
        let content_type = answer.response.header("content-type").unwrap();
        assert!(
            content_type.starts_with("multipart/mixed; boundary=otago-"),
            "{content_type}"
        );
        assert_eq!(
            answer.response.header("expo-signature"),
            None,
            "multipart signs the part, not the response"
        );
        for (format, media_type) in [
            (ResponseFormat::ExpoJson, "application/expo+json"),
            (ResponseFormat::Json, "application/json"),
        ] {
            r.format = format;
            let answer = updates.answer(&r).unwrap();
            assert_common(answer.response, expected);
            assert_eq!(answer.response.header("content-type"), Some(media_type));
            assert_eq!(answer.response.header("expo-signature"), Some(SIGNATURE));
            assert_eq!(answer.response.body(), &bytes);
        }
    }
}

#[test]
fn no_update_available_is_a_directive_or_204() {
    let updates = prepared(manifest_update(1, 10));
    let mut r = request(ProtocolVersion::V1);
    r.current_update_id = Some(updates.updates().next().unwrap().1.id.to_string().into());
    let answer = updates.answer(&r).unwrap();
    assert_eq!(
        (answer.kind, answer.response.status()),
        (DecisionKind::NoUpdateAvailable, 200)
    );
    assert!(
        answer
            .response
            .body()
            .windows(28)
            .any(|w| w == br#"{"type":"noUpdateAvailable"}"#)
    );
    r.expect_signature = Some(crate::ExpectSignature::new("main"));
    assert_eq!(updates.answer(&r).unwrap().response.status(), 204);
    r.expect_signature = None;
    r.accepts_multipart = false;
    r.format = ResponseFormat::Json;
    let answer = updates.answer(&r).unwrap();
    assert_eq!(answer.response.status(), 204);
    assert!(answer.response.body().is_empty() && answer.response.header("content-type").is_none());
    assert_common(answer.response, "1");
}

#[test]
fn rollbacks_need_multipart_and_signatures_must_match() {
    let updates = prepared(signed(rollback_update(2, 20)));
    let mut r = request(ProtocolVersion::V1);
    r.embedded_update_id = Some("123".into());
    let answer = updates.answer(&r).unwrap();
    assert_eq!(answer.kind, DecisionKind::RollBackToEmbedded);
    assert_common(answer.response, "1");
    r.expect_signature = Some(crate::ExpectSignature::new("main"));
    assert!(updates.answer(&r).is_ok());
    r.expect_signature = Some(crate::ExpectSignature::new("root"));
    let err = updates.answer(&r).unwrap_err();
    assert!(
        matches!(&err, Error::SignatureUnavailable { expected, .. } if expected == "root"),
        "{err}"
    );
    assert_eq!(err.http_status(), 400);
    r.expect_signature = None;
    r.accepts_multipart = false;
    assert_eq!(
        updates.answer(&r).unwrap_err(),
        Error::DirectiveNeedsMultipart
    );
    let err = updates.answer(&request(ProtocolVersion::V0)).unwrap_err();
    assert_eq!(err, Error::RollbackNeedsProtocolV1);
    assert_eq!(err.http_status(), 406);
}

#[test]
fn unsigned_updates_are_refused_to_clients_expecting_a_signature() {
    let updates = prepared(manifest_update(1, 10));
    let mut r = request(ProtocolVersion::V1);
    r.expect_signature = Some(crate::ExpectSignature::default());
    let err = updates.answer(&r).unwrap_err();
    assert!(
        err.to_string().contains("not signed") && err.to_string().contains("`root`"),
        "{err}"
    );
}

#[test]
fn another_runtime_version_sees_nothing() {
    let updates = prepared(manifest_update(1, 10));
    assert_eq!(updates.runtime_version(), Some("1"));
    let mut r = request(ProtocolVersion::V1);
    r.runtime_version = "2".into();
    assert_eq!(updates.answer(&r).unwrap().kind, DecisionKind::NoUpdate);
    r.protocol_version = ProtocolVersion::V0;
    assert_eq!(updates.answer(&r).unwrap_err(), Error::NoUpdate);
}

#[test]
fn extensions_carry_asset_request_headers_of_the_manifests_assets_only() {
    let update = manifest_update(1, 10);
    let manifest = Manifest::parse(&update.body.bytes).unwrap();
    let key = manifest.assets[0].key.clone();
    let headers = AssetRequestHeaders::from([
        (
            key.clone(),
            BTreeMap::from([("x-token".to_owned(), "abc".to_owned())]),
        ),
        (
            "not-in-this-manifest".to_owned(),
            BTreeMap::from([("x-other".to_owned(), "1".to_owned())]),
        ),
    ]);
    let updates = PreparedUpdates::new(update.into(), &headers).unwrap();
    let body = updates
        .answer(&request(ProtocolVersion::V1))
        .unwrap()
        .response
        .body()
        .clone();
    let expected = format!(r#"{{"assetRequestHeaders":{{"{key}":{{"x-token":"abc"}}}}}}"#);
    assert!(
        body.windows(expected.len())
            .any(|w| w == expected.as_bytes())
    );
    assert!(!body.windows(20).any(|w| w == b"not-in-this-manifest"));
    let bad = AssetRequestHeaders::from([(
        key,
        BTreeMap::from([("bad name".to_owned(), "x".to_owned())]),
    )]);
    assert!(PreparedUpdates::new(manifest_update(1, 10).into(), &bad).is_err());
}

#[test]
fn inconsistent_publications_are_refused() {
    let new = |release| PreparedUpdates::new(release, &AssetRequestHeaders::new());
    let mut twice = rollout(manifest_update(1, 10), manifest_update(2, 20), 10);
    twice.rollout.as_mut().unwrap().target = manifest_update(1, 10);
    assert!(new(twice).is_err(), "duplicate id");
    let mut wrong_date = manifest_update(1, 10);
    wrong_date.created_at = rollback_update(9, 99).created_at;
    assert!(
        new(wrong_date.into()).is_err(),
        "date differs from the body"
    );
    let mut over = rollout(manifest_update(1, 10), manifest_update(2, 20), 10);
    over.rollout.as_mut().unwrap().percentage = 100;
    assert!(
        matches!(new(over), Err(Error::Release { .. })),
        "a rollout at 100 % is complete"
    );
    let mut mislabelled = manifest_update(1, 10);
    mislabelled.kind = UpdateKind::RollBackToEmbedded;
    assert!(
        new(mislabelled.into()).is_err(),
        "manifest body labelled as rollback"
    );
    assert!(new(ChannelRelease::default()).is_ok());
}

#[test]
fn v0_gets_the_control_when_outside_a_rollout() {
    let control = manifest_update(1, 10);
    let updates = prepared(rollout(control.clone(), manifest_update(2, 20), 0));
    let answer = updates.answer(&request(ProtocolVersion::V0)).unwrap();
    assert_eq!(answer.update.map(|u| u.id), Some(control.id));
    assert_eq!(answer.role, Some(Role::Base));
    assert_common(answer.response, "0");
}

#[test]
fn roles_are_found_by_id() {
    let updates = prepared(rollout(manifest_update(1, 10), manifest_update(2, 20), 50));
    for (role, update) in updates.updates() {
        assert_eq!(updates.role_of(&update.id.to_string()), Some(role));
        assert_eq!(
            updates.role_of(&update.id.to_string().to_uppercase()),
            Some(role)
        );
    }
    assert_eq!(updates.updates().count(), 3);
    assert_eq!(
        updates.role_of("00000000-0000-4000-8000-000000000000"),
        None
    );
}

/// Checks that `answer` is the response its index names.
fn check_index(updates: &PreparedUpdates, r: &crate::ManifestRequest) -> usize {
    let all: Vec<&RenderedResponse> = updates.responses().collect();
    for (position, response) in all.iter().enumerate() {
        assert_eq!(response.index(), position);
    }
    let answer = updates.answer(r).unwrap();
    assert!(std::ptr::eq(all[answer.response.index()], answer.response));
    answer.response.index()
}

#[test]
fn every_answer_is_found_by_its_index() {
    let manifest = prepared(signed(manifest_update(1, 10)));
    assert_eq!(
        manifest.responses().count(),
        6 + 2,
        "6 renderings, 2 shared"
    );
    let mut seen = std::collections::BTreeSet::new();
    for version in [ProtocolVersion::V0, ProtocolVersion::V1] {
        for format in [
            ResponseFormat::Multipart,
            ResponseFormat::ExpoJson,
            ResponseFormat::Json,
        ] {
            let mut r = request(version);
            r.format = format;
            seen.insert(check_index(&manifest, &r));
        }
    }
    let mut r = request(ProtocolVersion::V1);
    r.current_update_id = Some(manifest.updates().next().unwrap().1.id.to_string().into());
    seen.insert(check_index(&manifest, &r));
    r.expect_signature = Some(crate::ExpectSignature::new("main"));
    seen.insert(check_index(&manifest, &r));
    assert_eq!(seen.len(), 8, "{seen:?}");

    let rollback = prepared(signed(rollback_update(2, 20)));
    assert_eq!(rollback.responses().count(), 1 + 2);
    let mut r = request(ProtocolVersion::V1);
    r.embedded_update_id = Some("123".into());
    assert_eq!(
        check_index(&rollback, &r),
        0,
        "the base's rendering comes first"
    );
}
