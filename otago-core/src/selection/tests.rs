use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::{AssetDescription, ManifestSpec, Platform, ResponseFormat};

pub(crate) fn id(n: u8) -> UpdateId {
    UpdateId::from_random_bytes([n; 16])
}

pub(crate) fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_millis(1_700_000_000_000 + seconds * 1000).unwrap()
}

pub(crate) fn manifest_update(n: u8, seconds: i64) -> PublishedUpdate {
    let manifest = Manifest::build(ManifestSpec {
        id: id(n),
        created_at: at(seconds),
        runtime_version: "1".into(),
        launch_asset: AssetDescription::of_launch_asset(&[n], "hbc").unwrap(),
        assets: vec![AssetDescription::of_asset(b"png", "png").unwrap()],
        asset_base_url: "https://cdn.example.com/a".into(),
        metadata: BTreeMap::new(),
        expo_client: None,
    })
    .unwrap();
    PublishedUpdate::manifest(manifest.to_bytes(), None).unwrap()
}

pub(crate) fn rollback_update(n: u8, seconds: i64) -> PublishedUpdate {
    let directive = Directive::roll_back_to_embedded(at(seconds));
    PublishedUpdate::roll_back_to_embedded(id(n), directive.to_bytes(), None).unwrap()
}

pub(crate) fn request(version: ProtocolVersion) -> ManifestRequest<'static> {
    ManifestRequest {
        platform: Platform::Ios,
        runtime_version: "1".into(),
        protocol_version: version,
        current_update_id: None,
        embedded_update_id: None,
        channel_name: None,
        expect_signature: None,
        extra_params: BTreeMap::new(),
        recent_failed_update_ids: Vec::new(),
        client_id: None,
        a_im: Vec::new(),
        format: ResponseFormat::Multipart,
        accepts_multipart: true,
    }
}

fn chosen_id(decision: Decision<'_>) -> Option<UpdateId> {
    match decision {
        Decision::Manifest(update) | Decision::RollBackToEmbedded(update) => Some(update.id),
        _ => None,
    }
}

fn full(update: PublishedUpdate) -> ChannelRelease {
    ChannelRelease::from(update)
}

#[test]
fn the_base_is_served_to_v0_and_v1() {
    let release = full(manifest_update(3, 30));
    for version in [ProtocolVersion::V0, ProtocolVersion::V1] {
        let decision = decide(&release, &request(version)).unwrap();
        assert_eq!(decision.kind(), DecisionKind::Manifest);
        assert_eq!(chosen_id(decision), Some(id(3)));
    }
}

#[test]
fn running_the_chosen_update_is_no_update_available_for_v1_only() {
    let release = full(manifest_update(1, 10));
    let mut v1 = request(ProtocolVersion::V1);
    v1.current_update_id = Some(id(1).to_string().to_uppercase().into());
    assert_eq!(decide(&release, &v1).unwrap(), Decision::NoUpdateAvailable);
    let mut v0 = request(ProtocolVersion::V0);
    v0.current_update_id = v1.current_update_id.clone();
    assert_eq!(chosen_id(decide(&release, &v0).unwrap()), Some(id(1)));
}

#[test]
fn nothing_published_is_no_update_for_v1_and_404_for_v0() {
    let nothing = ChannelRelease::default();
    assert_eq!(
        decide(&nothing, &request(ProtocolVersion::V1)).unwrap(),
        Decision::NoUpdate
    );
    assert_eq!(
        decide(&nothing, &request(ProtocolVersion::V0)).unwrap_err(),
        Error::NoUpdate
    );
}

#[test]
fn rollbacks_need_v1_and_an_embedded_update() {
    let release = full(rollback_update(2, 20));
    let mut v0 = request(ProtocolVersion::V0);
    assert_eq!(
        decide(&release, &v0).unwrap_err(),
        Error::RollbackNeedsProtocolV1,
        "a v0 client is told why, not that nothing is published"
    );
    v0.embedded_update_id = Some("123".into());
    assert_eq!(
        decide(&release, &v0).unwrap_err(),
        Error::RollbackNeedsProtocolV1
    );
    assert_eq!(
        decide(&release, &request(ProtocolVersion::V1)).unwrap(),
        Decision::NoUpdate
    );
    let mut v1 = request(ProtocolVersion::V1);
    v1.embedded_update_id = Some("123".into());
    let decision = decide(&release, &v1).unwrap();
    assert_eq!(
        (decision.kind(), chosen_id(decision)),
        (DecisionKind::RollBackToEmbedded, Some(id(2)))
    );
    v1.current_update_id = Some("123".into());
    assert_eq!(decide(&release, &v1).unwrap(), Decision::NoUpdateAvailable);
}

#[test]
fn rollout_bucket_is_stable_and_spread() {
    // Golden values from Python: int.from_bytes(sha256(b"device-1:0101…0101").digest()[:8], "big") % 100
    assert_eq!(id(1).to_string(), "01010101-0101-4101-8101-010101010101");
    assert_eq!(rollout_bucket("device", id(1)), 51);
    assert_eq!(
        rollout_bucket("device", id(2)),
        70,
        "another update, another bucket"
    );
    assert_eq!(rollout_bucket("device-1", id(1)), 19);
    assert_eq!(rollout_bucket("a", id(1)), 37);
    assert_eq!(
        rollout_bucket("0f1e2d3c-aaaa-4bbb-8ccc-000000000001", id(1)),
        50
    );
    let below_half = (0..1000)
        .filter(|i| rollout_bucket(&format!("d{i}"), id(1)) < 50)
        .count();
    assert!((400..600).contains(&below_half), "{below_half}");
}

#[test]
fn devices_stay_in_a_rollout_as_it_grows() {
    let base = full(manifest_update(1, 10));
    let target = manifest_update(2, 20);
    let (kind, bytes) = crate::standby_body(base.base.as_ref(), target.created_at, id(9)).unwrap();
    let standby = crate::standby_update(kind, id(9), bytes, None).unwrap();
    let mut release = base.publish(target, 0, Some(standby)).unwrap();
    let mut was_in = vec![false; 200];
    for percentage in [0u8, 10, 50, 90, 100] {
        release = release.raise(percentage).unwrap();
        let now_in: Vec<bool> = (0..200)
            .map(|i| {
                let mut r = request(ProtocolVersion::V1);
                r.client_id = Some(format!("device-{i}").into());
                chosen_id(decide(&release, &r).unwrap()) == Some(id(2))
            })
            .collect();
        for (before, now) in was_in.iter().zip(&now_in) {
            assert!(
                !*before || *now,
                "a device left the rollout when it grew to {percentage}%"
            );
        }
        let count = now_in.iter().filter(|&&x| x).count();
        match percentage {
            0 => assert_eq!(count, 0),
            100 => assert_eq!(count, 200),
            p => assert!(
                count.abs_diff(usize::from(p) * 2) < 40,
                "{p}% gave {count}/200"
            ),
        }
        was_in = now_in;
    }
}

#[test]
fn stored_signatures_are_checked_and_default_to_root() {
    let signature =
        StoredSignature::parse(r#"sig="AAAA", keyid="main", alg="rsa-v1_5-sha256""#).unwrap();
    assert_eq!(signature.keyid(), "main");
    assert_eq!(
        StoredSignature::parse(r#"sig="AAAA""#).unwrap().keyid(),
        "root"
    );
    for bad in [
        "",
        r#"keyid="main""#,
        "sig=AAAA",
        r#"sig="A", keyid=main"#,
        r#"sig="A", alg="hs256""#,
        "sig=\"A\"\r\nx: y",
    ] {
        assert!(StoredSignature::parse(bad).is_err(), "{bad:?}");
    }
}

proptest! {
    #[test]
    fn decide_never_panics_and_respects_v0(
        base in proptest::option::of((any::<bool>(), 0i64..50)),
        rollout in proptest::option::of((0u8..100, any::<bool>())),
        v1 in any::<bool>(),
        current in proptest::option::of(0u8..8),
        embedded in proptest::option::of(0u8..8),
        client in proptest::option::of("[a-z]{1,8}"),
    ) {
        let mut release = match base {
            Some((true, seconds)) => full(manifest_update(1, seconds)),
            Some((false, seconds)) => full(rollback_update(1, seconds)),
            None => ChannelRelease::default(),
        };
        if let Some((percentage, revert)) = rollout {
            let target = manifest_update(2, 60);
            let (kind, bytes) = crate::standby_body(release.base.as_ref(), target.created_at, id(3)).unwrap();
            let standby = crate::standby_update(kind, id(3), bytes, None).unwrap();
            release = release.publish(target, percentage, Some(standby)).unwrap();
            if revert {
                release = release.revert().unwrap();
            }
        }
        let mut r = request(if v1 { ProtocolVersion::V1 } else { ProtocolVersion::V0 });
        r.current_update_id = current.map(|n| id(n).to_string().into());
        r.embedded_update_id = embedded.map(|n| id(n).to_string().into());
        r.client_id = client.map(Into::into);
        match decide(&release, &r) {
            Ok(Decision::Manifest(update)) => prop_assert_eq!(update.kind, UpdateKind::Manifest),
            Ok(Decision::RollBackToEmbedded(update)) => {
                prop_assert!(v1 && r.embedded_update_id.is_some());
                prop_assert_eq!(update.kind, UpdateKind::RollBackToEmbedded);
            }
            Ok(_) => prop_assert!(v1, "v0 only ever gets a manifest"),
            Err(Error::RollbackNeedsProtocolV1) => prop_assert!(!v1),
            Err(err) => prop_assert!(!v1 && err == Error::NoUpdate, "{err}"),
        }
    }
}
