use proptest::prelude::*;

use super::*;

const BASE: [(&str, &str); 4] = [
    ("Expo-Platform", "ios"),
    ("Expo-Runtime-Version", "1.2.3"),
    ("Expo-Protocol-Version", "1"),
    (
        "Accept",
        "multipart/mixed,application/expo+json,application/json",
    ),
];

fn parse_with(extra: &[(&str, &str)]) -> Result<ManifestRequest<'static>> {
    let headers: Vec<(&str, &[u8])> = BASE
        .iter()
        .chain(extra)
        .map(|(n, v)| (*n, v.as_bytes()))
        .collect();
    ManifestRequest::parse("GET", headers).map(ManifestRequest::into_owned)
}

fn status(result: Result<ManifestRequest<'_>>) -> u16 {
    result.unwrap_err().http_status()
}

#[test]
fn a_real_client_request_parses() {
    let request = parse_with(&[
        (
            "Expo-Current-Update-ID",
            "0A1B2C3D-0000-4000-8000-000000000000",
        ),
        ("Expo-Embedded-Update-ID", "123"),
        ("expo-channel-name", "production"),
        (
            "expo-expect-signature",
            r#"sig, keyid="main", alg="rsa-v1_5-sha256""#,
        ),
        ("Expo-Extra-Params", r#"cohort="a", beta="yes""#),
        ("Expo-Recent-Failed-Update-IDs", r#""AA-1", "bb-2""#),
        ("EAS-Client-ID", "client-1"),
        ("A-IM", "BSDIFF"),
        ("Expo-API-Version", "1"),
    ])
    .unwrap();
    assert_eq!(request.platform, Platform::Ios);
    assert_eq!(request.runtime_version, "1.2.3");
    assert_eq!(request.protocol_version, ProtocolVersion::V1);
    assert_eq!(
        request.current_update_id.as_deref(),
        Some("0a1b2c3d-0000-4000-8000-000000000000")
    );
    assert_eq!(request.embedded_update_id.as_deref(), Some("123"));
    assert_eq!(request.channel_name.as_deref(), Some("production"));
    assert_eq!(request.expect_signature, Some(ExpectSignature::new("main")));
    assert_eq!(
        request.extra_params.get("cohort").map(String::as_str),
        Some("a")
    );
    assert_eq!(request.recent_failed_update_ids, ["aa-1", "bb-2"]);
    assert_eq!(request.client_id.as_deref(), Some("client-1"));
    assert_eq!(request.a_im, ["bsdiff"]);
    assert_eq!(
        (request.format, request.accepts_multipart),
        (ResponseFormat::Multipart, true)
    );
}

#[test]
fn methods_other_than_get_and_head_are_405() {
    let headers = BASE.map(|(n, v)| (n, v.as_bytes()));
    assert!(ManifestRequest::parse("HEAD", headers).is_ok());
    for method in ["POST", "PUT", "get", ""] {
        assert_eq!(
            ManifestRequest::parse(method, headers)
                .unwrap_err()
                .http_status(),
            405,
            "{method}"
        );
    }
}

#[test]
fn protocol_version_defaults_to_0_and_refuses_others() {
    let headers = [
        ("expo-platform", b"android".as_slice()),
        ("expo-runtime-version", b"1".as_slice()),
    ];
    let request = ManifestRequest::parse("GET", headers).unwrap();
    assert_eq!(request.protocol_version, ProtocolVersion::V0);
    assert_eq!(request.platform, Platform::Android);
    for bad in ["2", "1.0", "", "01"] {
        let headers = [
            ("expo-platform", b"ios".as_slice()),
            ("expo-runtime-version", b"1"),
            ("expo-protocol-version", bad.as_bytes()),
        ];
        assert_eq!(
            status(ManifestRequest::parse("GET", headers)),
            400,
            "{bad:?}"
        );
    }
    let err = parse_with(&[("expo-protocol-version", "1")]).unwrap_err();
    assert!(
        err.to_string().contains("`expo-protocol-version`") && err.to_string().contains("once"),
        "{err}"
    );
}

#[test]
fn missing_or_bad_platform_and_runtime_are_400_naming_the_header() {
    let err =
        ManifestRequest::parse("GET", [("expo-runtime-version", b"1".as_slice())]).unwrap_err();
    assert!(
        err.to_string().contains("expo-platform") && err.to_string().contains("ios"),
        "{err}"
    );
    let err = ManifestRequest::parse(
        "GET",
        [
            ("expo-platform", b"web".as_slice()),
            ("expo-runtime-version", b"1"),
        ],
    )
    .unwrap_err();
    assert_eq!(err.http_status(), 400);
    let err = ManifestRequest::parse("GET", [("expo-platform", b"ios".as_slice())]).unwrap_err();
    assert!(err.to_string().contains("expo-runtime-version"), "{err}");
    let err = ManifestRequest::parse(
        "GET",
        [
            ("expo-platform", b"ios".as_slice()),
            ("expo-runtime-version", b""),
        ],
    )
    .unwrap_err();
    assert_eq!(err.http_status(), 400);
}

#[test]
fn runtime_versions_longer_than_a_publish_allows_are_400() {
    let longest = "v".repeat(MAX_RUNTIME_VERSION_LEN);
    let headers = [
        ("expo-platform", b"ios".as_slice()),
        ("expo-runtime-version", longest.as_bytes()),
    ];
    let request = ManifestRequest::parse("GET", headers).unwrap();
    assert_eq!(request.runtime_version.len(), MAX_RUNTIME_VERSION_LEN);
    let longer = format!("{longest}v");
    let headers = [
        ("expo-platform", b"ios".as_slice()),
        ("expo-runtime-version", longer.as_bytes()),
    ];
    let err = ManifestRequest::parse("GET", headers).unwrap_err();
    assert_eq!(err.http_status(), 400);
    let message = err.to_string();
    assert!(
        message.contains("expo-runtime-version") && message.contains("256 bytes"),
        "{message}"
    );
}

#[test]
fn oversized_values_are_431_and_bad_bytes_400() {
    let big = "a".repeat(MAX_HEADER_VALUE_BYTES + 1);
    assert_eq!(status(parse_with(&[("expo-channel-name", &big)])), 431);
    let half = "*/*;q=0.5,".repeat(MAX_HEADER_VALUE_BYTES / 20);
    assert_eq!(
        status(parse_with(&[
            ("accept", &half),
            ("accept", &half),
            ("accept", &half)
        ])),
        431
    );
    let headers = [
        ("expo-platform", b"ios".as_slice()),
        ("expo-runtime-version", b"\xff\xfe"),
    ];
    let err = ManifestRequest::parse("GET", headers).unwrap_err();
    assert!(
        err.to_string().contains("expo-runtime-version") && err.to_string().contains("UTF-8"),
        "{err}"
    );
    let err = parse_with(&[("expo-channel-name", "a\u{7}b")]).unwrap_err();
    assert!(
        err.to_string().contains("expo-channel-name") && err.to_string().contains("control"),
        "{err}"
    );
}

#[test]
fn values_are_trimmed_of_spaces_and_tabs_only_and_keep_non_ascii_text() {
    assert_eq!(header_text("h", b" \t 1.0.0\t ").unwrap(), "1.0.0");
    assert_eq!(header_text("h", b"  ").unwrap(), "");
    assert_eq!(header_text("h", b"").unwrap(), "");
    assert_eq!(header_text("h", b"a b").unwrap(), "a b");
    // Printable non-ASCII text goes the slow way and is kept.
    assert_eq!(header_text("h", " café ".as_bytes()).unwrap(), "café");
    // Controls inside the value are refused, ASCII or not; a tab inside too.
    for bad in [&b"a\tb"[..], b"a\nb", b"\x7f", "é\u{85}".as_bytes(), b" \r"] {
        let err = header_text("h", bad).unwrap_err();
        assert!(err.to_string().contains("control"), "{bad:?}: {err}");
    }
}

#[test]
fn printable_ascii_is_told_apart_byte_by_byte() {
    for len in [0, 1, 7, 8, 9, 16, 23] {
        let printable: Vec<u8> = (0..len).map(|i| b' ' + (i * 13 % 95) as u8).collect();
        assert!(is_printable_ascii(&printable), "{printable:?}");
        for at in 0..len {
            for byte in (0..=0x1f).chain(0x7f..=0xff) {
                let mut bytes = printable.clone();
                bytes[at] = byte;
                assert!(!is_printable_ascii(&bytes), "{byte:#x} at {at} of {len}");
            }
        }
    }
    // Every printable byte in every lane of a word.
    for byte in b' '..=b'~' {
        assert!(is_printable_ascii(&[byte; 17]), "{byte:#x}");
    }
}

#[test]
fn header_names_map_to_their_fields() {
    for (index, &(name, field)) in FIELDS.iter().enumerate() {
        assert_eq!(field as usize, index, "{field:?}");
        assert_eq!(Field::named(name), Some(field), "{name}");
        assert_eq!(
            Field::named(&name.to_ascii_uppercase()),
            Some(field),
            "{name}"
        );
    }
    for other in [
        "host",
        "expo-platforms",
        "expo-api-version",
        "",
        "accept-encoding",
    ] {
        assert_eq!(Field::named(other), None, "{other}");
    }
}

#[test]
fn update_ids_are_bounded_and_lowercased() {
    let long = "a".repeat(MAX_ID_LEN + 1);
    assert_eq!(
        status(parse_with(&[("expo-current-update-id", &long)])),
        400
    );
    assert_eq!(
        status(parse_with(&[("expo-embedded-update-id", "../x")])),
        400
    );
    assert_eq!(status(parse_with(&[("eas-client-id", &long)])), 400);
    let request = parse_with(&[
        ("expo-current-update-id", "  ABC-def  "),
        ("expo-embedded-update-id", ""),
    ])
    .unwrap();
    assert_eq!(request.current_update_id.as_deref(), Some("abc-def"));
    assert_eq!(request.embedded_update_id, None);
}

#[test]
fn text_is_borrowed_from_the_headers_unless_it_had_to_change() {
    let headers = [
        ("expo-platform", b"ios".as_slice()),
        ("expo-runtime-version", b" 1.0.0 "),
        ("expo-current-update-id", b"abc-def"),
        ("expo-embedded-update-id", b"ABC-def"),
        ("eas-client-id", b"device-1"),
    ];
    let request = ManifestRequest::parse("GET", headers).unwrap();
    assert!(matches!(request.runtime_version, Cow::Borrowed("1.0.0")));
    assert!(matches!(
        request.current_update_id,
        Some(Cow::Borrowed("abc-def"))
    ));
    assert!(matches!(request.embedded_update_id, Some(Cow::Owned(ref id)) if id == "abc-def"));
    assert!(matches!(request.client_id, Some(Cow::Borrowed("device-1"))));
    let owned = request.clone().into_owned();
    assert_eq!(owned, request);
    assert!(matches!(owned.runtime_version, Cow::Owned(_)));
}

#[test]
fn singletons_repeat_is_400_lists_are_joined() {
    assert_eq!(status(parse_with(&[("EXPO-PLATFORM", "ios")])), 400);
    let request = parse_with(&[
        ("expo-extra-params", r#"a="1""#),
        ("Expo-Extra-Params", r#"b="2""#),
    ])
    .unwrap();
    assert_eq!(request.extra_params.len(), 2);
}

#[test]
fn accept_decides_the_format() {
    let headers = |accept: &'static str| {
        [
            ("expo-platform", b"ios".as_slice()),
            ("expo-runtime-version", b"1"),
            ("accept", accept.as_bytes()),
        ]
    };
    let request = ManifestRequest::parse("GET", headers("application/json")).unwrap();
    assert_eq!(
        (request.format, request.accepts_multipart),
        (ResponseFormat::Json, false)
    );
    let request = ManifestRequest::parse(
        "GET",
        headers("application/expo+json, application/json;q=0.9"),
    )
    .unwrap();
    assert_eq!(request.format, ResponseFormat::ExpoJson);
    assert_eq!(
        ManifestRequest::parse("GET", headers("text/html"))
            .unwrap_err()
            .http_status(),
        406
    );
}

#[test]
fn expect_signature_defaults_and_refusals() {
    assert_eq!(
        ExpectSignature::parse("sig").unwrap(),
        ExpectSignature::new("root")
    );
    assert_eq!(
        ExpectSignature::parse("sig, keyid=main").unwrap().keyid,
        "main"
    );
    assert!(!ExpectSignature::parse("sig=?0").unwrap().sig);
    // The last occurrence of a member counts (RFC 8941 §4.2.2), whatever came before it.
    assert_eq!(
        ExpectSignature::parse(r#"keyid=(a b), sig, keyid="main", other=(1 2);x"#)
            .unwrap()
            .keyid,
        "main"
    );
    assert!(ExpectSignature::parse(r#"sig=?0, sig"#).unwrap().sig);
    assert!(ExpectSignature::parse(r#"keyid="main", keyid=(a)"#).is_err());
    for bad in [
        r#"sig, alg="ecdsa-p256""#,
        "sig=1",
        r#"sig, keyid="""#,
        "sig, keyid=(a b)",
        "sig,,",
        "Sig",
    ] {
        let err = ExpectSignature::parse(bad).unwrap_err();
        assert!(
            err.to_string().contains("expo-expect-signature"),
            "{bad}: {err}"
        );
    }
    assert_eq!(
        status(parse_with(&[(
            "expo-expect-signature",
            r#"sig, alg="hmac""#
        )])),
        400
    );
    assert_eq!(
        ExpectSignature::new("main").to_header_value().unwrap(),
        r#"sig, keyid="main", alg="rsa-v1_5-sha256""#
    );
    assert!(ExpectSignature::new("").to_header_value().is_err());
}

#[test]
fn extra_params_and_failed_ids_refuse_non_strings() {
    assert_eq!(parse_extra_params("").unwrap(), BTreeMap::new());
    for bad in ["a=1", "a", "a=(\"x\")", "A=\"x\"", "a=\"x"] {
        assert!(parse_extra_params(bad).is_err(), "{bad}");
    }
    assert!(parse_recent_failed_update_ids("").unwrap().is_empty());
    for bad in ["abc", "1", "(\"a\")", "\"a\","] {
        assert!(parse_recent_failed_update_ids(bad).is_err(), "{bad}");
    }
    let params = BTreeMap::from([("Upper".to_owned(), "x".to_owned())]);
    assert!(
        extra_params_header_value(&params)
            .unwrap_err()
            .to_string()
            .contains("expo-extra-params")
    );
    assert!(recent_failed_update_ids_header_value(&["tab\there"]).is_err());
}

fn sfv_key() -> impl Strategy<Value = String> {
    "[a-z*][a-z0-9_.*-]{0,12}"
}

fn sfv_string() -> impl Strategy<Value = String> {
    "[ -~]{0,24}"
}

proptest! {
    #[test]
    fn extra_params_round_trip(params in proptest::collection::btree_map(sfv_key(), sfv_string(), 0..8)) {
        let value = extra_params_header_value(&params).unwrap();
        prop_assert_eq!(parse_extra_params(&value).unwrap(), params.clone());
        // and through a whole request
        let request = parse_with(&[("expo-extra-params", value.as_str())]).unwrap();
        prop_assert_eq!(request.extra_params, params);
    }

    #[test]
    fn failed_update_ids_round_trip(ids in proptest::collection::vec("[ -~]{0,40}".prop_map(|id| id.to_ascii_lowercase()), 0..8)) {
        let value = recent_failed_update_ids_header_value(&ids).unwrap();
        prop_assert_eq!(parse_recent_failed_update_ids(&value).unwrap(), ids.clone());
        let request = parse_with(&[("expo-recent-failed-update-ids", value.as_str())]).unwrap();
        prop_assert_eq!(request.recent_failed_update_ids, ids);
    }

    #[test]
    fn expect_signature_round_trips(keyid in "[ -~]{1,24}", sig in any::<bool>()) {
        let expected = ExpectSignature { sig, keyid };
        let value = expected.to_header_value().unwrap();
        prop_assert_eq!(ExpectSignature::parse(&value).unwrap(), expected.clone());
        let request = parse_with(&[("expo-expect-signature", value.as_str())]).unwrap();
        prop_assert_eq!(request.expect_signature, Some(expected));
    }

    #[test]
    fn parse_never_panics(
        method in prop_oneof![Just("GET".to_owned()), "[A-Z]{0,6}"],
        headers in proptest::collection::vec(
            (
                prop_oneof![
                    Just("expo-platform"), Just("expo-runtime-version"), Just("expo-protocol-version"),
                    Just("expo-current-update-id"), Just("expo-embedded-update-id"), Just("expo-expect-signature"),
                    Just("expo-extra-params"), Just("expo-recent-failed-update-ids"), Just("eas-client-id"),
                    Just("a-im"), Just("accept"), Just("x-other"),
                ],
                proptest::collection::vec(any::<u8>(), 0..40),
            ),
            0..10,
        ),
    ) {
        let result = ManifestRequest::parse(&method, headers.iter().map(|(n, v)| (*n, v.as_slice())));
        if let Err(err) = result {
            prop_assert!([400, 405, 406, 431].contains(&err.http_status()), "{err}");
        }
    }
}
