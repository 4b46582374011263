//! Answer an Expo Updates protocol request with the core alone: the published updates
//! are prepared once (every response rendered), then each request only parses its
//! headers and picks a pre-rendered answer. Plug this into any HTTP stack.
//!
//! ```sh
//! cargo run -p otago-examples --example answer_request
//! ```

use std::collections::BTreeMap;
use std::error::Error;

use otago_core::{
    AssetDescription, ManifestRequest, Manifest, ManifestSpec, PreparedUpdates, PublishedUpdate, Timestamp,
    UpdateId,
};

fn main() -> Result<(), Box<dyn Error>> {
    let prepared = publish()?;
    // What expo-updates sends at launch (header names are matched case-insensitively).
    let headers: [(&str, &[u8]); 4] = [
        ("Expo-Platform", b"ios"),
        ("Expo-Runtime-Version", b"1.0.0"),
        ("Expo-Protocol-Version", b"1"),
        ("Accept", b"multipart/mixed,application/expo+json,application/json"),
    ];
    let (status, response_headers, body) = answer(&prepared, "GET", &headers)?;
    println!("HTTP {status}");
    for (name, value) in response_headers {
        println!("{name}: {value}");
    }
    println!("\n{}", String::from_utf8_lossy(&body));
    Ok(())
}

/// Publish time: build one update's manifest and render every response it can produce.
fn publish() -> Result<PreparedUpdates, Box<dyn Error>> {
    let manifest = Manifest::build(ManifestSpec {
        id: UpdateId::from_random_bytes(*b"sixteen random!!"),
        created_at: Timestamp::from_unix_millis(1_767_225_600_000)?,
        runtime_version: "1.0.0".to_owned(),
        launch_asset: AssetDescription::of_launch_asset(b"console.log('hello')", "js")?,
        assets: vec![AssetDescription::of_asset(b"\x89PNG...", "png")?],
        asset_base_url: "https://updates.example.com/assets".to_owned(),
        metadata: BTreeMap::new(),
        expo_client: Some(serde_json::json!({ "name": "Example", "slug": "example" })),
    })?;
    let update = PublishedUpdate::manifest(manifest.to_bytes(), None)?;
    Ok(PreparedUpdates::new(vec![update], &BTreeMap::new())?)
}

/// Request time: parse the headers, choose, and hand back status, headers and body.
/// A bad request becomes its HTTP status and message instead.
fn answer(
    prepared: &PreparedUpdates,
    method: &str,
    headers: &[(&str, &[u8])],
) -> Result<(u16, Vec<(String, String)>, Vec<u8>), Box<dyn Error>> {
    let answer = ManifestRequest::parse(method, headers.iter().copied()).and_then(|request| prepared.answer(&request));
    match answer {
        Ok(answer) => {
            let response = answer.response;
            let headers = response.headers().iter().map(|(name, value)| ((*name).to_owned(), value.clone())).collect();
            Ok((response.status(), headers, response.body().to_vec()))
        }
        Err(err) => Ok((err.http_status(), Vec::new(), err.to_string().into_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_manifest_then_refuses_bad_requests() {
        let prepared = publish().unwrap();
        let ok: [(&str, &[u8]); 3] = [("expo-platform", b"android"), ("expo-runtime-version", b"1.0.0"), ("expo-protocol-version", b"1")];
        let (status, headers, body) = answer(&prepared, "GET", &ok).unwrap();
        assert_eq!(status, 200);
        assert!(headers.iter().any(|(n, v)| n == "content-type" && v.starts_with("multipart/mixed; boundary=")));
        assert!(String::from_utf8(body).unwrap().contains("content-disposition: inline; name=\"manifest\""));

        let (status, ..) = answer(&prepared, "POST", &ok).unwrap();
        assert_eq!(status, 405);
        let (status, _, message) = answer(&prepared, "GET", &ok[..1]).unwrap();
        assert_eq!(status, 400);
        assert!(String::from_utf8(message).unwrap().contains("expo-runtime-version"));
    }
}
