//! Request headers: the whole manifest request, and each structured (RFC 8941) header alone.

use otago_core::{
    ExpectSignature, MAX_HEADER_VALUE_BYTES, ManifestRequest, ProtocolVersion, ResponseFormat,
    SignatureHeader, StoredSignature, extra_params_header_value, parse_extra_params,
    parse_recent_failed_update_ids, recent_failed_update_ids_header_value,
};

/// Strips the spaces and tabs around a header value, as HTTP/1 servers do.
fn trim_blanks(bytes: &[u8]) -> &[u8] {
    let is_blank = |b: &u8| matches!(b, b' ' | b'\t' | b'\r');
    let start = bytes
        .iter()
        .position(|b| !is_blank(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_blank(b))
        .map_or(start, |last| last + 1);
    &bytes[start..end]
}

/// Reads the input as a request head: the method on the first line, then `name: value` lines.
/// Names are taken as UTF-8 (lossily), values as raw bytes.
fn request_head(data: &[u8]) -> (String, Vec<(String, &[u8])>) {
    let mut lines = data.split(|&b| b == b'\n');
    let method =
        String::from_utf8_lossy(trim_blanks(lines.next().unwrap_or_default())).into_owned();
    let headers = lines
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            let name = String::from_utf8_lossy(&line[..colon]).into_owned();
            Some((name, trim_blanks(&line[colon + 1..])))
        })
        .collect();
    (method, headers)
}

/// The headers a client would send to be read as `request`.
fn render(request: &ManifestRequest<'_>) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        ("expo-platform", request.platform.as_str().to_owned()),
        ("expo-runtime-version", request.runtime_version.to_string()),
    ];
    if request.protocol_version == ProtocolVersion::V1 {
        headers.push(("expo-protocol-version", "1".to_owned()));
    }
    let optional = [
        ("expo-current-update-id", &request.current_update_id),
        ("expo-embedded-update-id", &request.embedded_update_id),
        ("expo-channel-name", &request.channel_name),
        ("eas-client-id", &request.client_id),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            headers.push((name, value.to_string()));
        }
    }
    if let Some(expect) = &request.expect_signature {
        let value = expect
            .to_header_value()
            .expect("an expo-expect-signature that was read renders");
        headers.push(("expo-expect-signature", value));
    }
    if !request.extra_params.is_empty() {
        let value = extra_params_header_value(&request.extra_params)
            .expect("expo-extra-params that were read render");
        headers.push(("expo-extra-params", value));
    }
    if !request.recent_failed_update_ids.is_empty() {
        let value = recent_failed_update_ids_header_value(&request.recent_failed_update_ids)
            .expect("expo-recent-failed-update-ids that were read render");
        headers.push(("expo-recent-failed-update-ids", value));
    }
    if !request.a_im.is_empty() {
        // Joined with a bare comma: each token came from its own comma-separated piece, so
        // the value is never longer than what was read (`, ` could pass the size limit).
        headers.push(("a-im", request.a_im.join(",")));
    }
    let preferred = request.format.media_type();
    let accept = match request.format {
        ResponseFormat::Multipart => preferred.to_owned(),
        _ if request.accepts_multipart => format!("{preferred}, multipart/mixed;q=0.5"),
        _ => preferred.to_owned(),
    };
    headers.push(("accept", accept));
    headers
}

/// `ManifestRequest::parse` over a request head (see [`request_head`]): it never panics, and a
/// request it reads, rendered back into headers, reads the same.
pub fn manifest_request(data: &[u8]) {
    let (method, headers) = request_head(data);
    let Ok(request) = ManifestRequest::parse(
        &method,
        headers.iter().map(|(name, value)| (name.as_str(), *value)),
    ) else {
        return;
    };
    let rendered = render(&request);
    let reread = ManifestRequest::parse(
        "GET",
        rendered
            .iter()
            .map(|(name, value)| (*name, value.as_bytes())),
    );
    if rendered
        .iter()
        .any(|(_, value)| value.len() > MAX_HEADER_VALUE_BYTES)
    {
        // A structured header's canonical form (`a=1, b=2`) can be longer than the compact
        // one that was read (`a=1,b=2`); past the limit, the one answer is a 431.
        assert!(
            matches!(
                reread,
                Err(otago_core::Error::BadHeader { status: 431, .. })
            ),
            "an over-long rendered value must be a 431: {reread:?}"
        );
        return;
    }
    let again =
        reread.unwrap_or_else(|err| panic!("the rendered request {rendered:?} is refused: {err}"));
    assert_eq!(again, request, "rendered as {rendered:?}");
    assert_eq!(request.clone().into_owned(), request);
}

/// Each structured-header parser over the input as one header value: none panics, and each
/// value read renders to a value that reads the same.
pub fn sfv_headers(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(expect) = ExpectSignature::parse(text) {
        let rendered = expect
            .to_header_value()
            .expect("a parsed expectation renders");
        assert_eq!(
            ExpectSignature::parse(&rendered).ok(),
            Some(expect),
            "{rendered}"
        );
    }
    if let Ok(params) = parse_extra_params(text) {
        let rendered = extra_params_header_value(&params).expect("parsed extra params render");
        assert_eq!(
            parse_extra_params(&rendered).ok(),
            Some(params),
            "{rendered}"
        );
    }
    if let Ok(ids) = parse_recent_failed_update_ids(text) {
        let rendered = recent_failed_update_ids_header_value(&ids).expect("parsed ids render");
        assert_eq!(
            parse_recent_failed_update_ids(&rendered).ok(),
            Some(ids),
            "{rendered}"
        );
    }
    if let Ok(header) = SignatureHeader::parse(text) {
        let rendered = header.to_header_value();
        assert_eq!(
            SignatureHeader::parse(&rendered).ok(),
            Some(header.clone()),
            "{rendered}"
        );
        let stored = StoredSignature::parse(text).expect("a valid expo-signature is stored");
        assert_eq!(stored.keyid(), header.keyid());
        assert_eq!(stored.header_value(), text.trim_matches([' ', '\t']));
    }
}
