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
    AssetDescription, Manifest, ManifestRequest, ManifestSpec, PreparedUpdates, PublishedUpdate,
    Timestamp, UpdateId,
};

fn main() -> Result<(), Box<dyn Error>> {
    let prepared = publish()?;
    // What expo-updates sends at launch (header names are matched case-insensitively).
    let headers: [(&str, &[u8]); 4] = [
        ("Expo-Platform", b"ios"),
        ("Expo-Runtime-Version", b"1.0.0"),
        ("Expo-Protocol-Version", b"1"),
        (
            "Accept",
            b"multipart/mixed,application/expo+json,application/json",
        ),
    ];
    let reply = answer(&prepared, "GET", &headers);
    println!("HTTP {}", reply.status);
    for (name, value) in &reply.headers {
        println!("{name}: {value}");
    }
    println!("\n{}", String::from_utf8_lossy(&reply.body));
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
    Ok(PreparedUpdates::new(update.into(), &BTreeMap::new())?)
}

/// What an HTTP layer writes out.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Request time: parse the headers, choose, and hand back status, headers and body.
/// A bad request becomes its HTTP status and message instead.
fn answer(prepared: &PreparedUpdates, method: &str, headers: &[(&str, &[u8])]) -> Reply {
    let answer = ManifestRequest::parse(method, headers.iter().copied())
        .and_then(|request| prepared.answer(&request));
    match answer {
        Ok(answer) => Reply {
            status: answer.response.status(),
            headers: answer
                .response
                .headers()
                .iter()
                .map(|(name, value)| ((*name).to_owned(), value.clone()))
                .collect(),
            body: answer.response.body().to_vec(),
        },
        Err(err) => Reply {
            status: err.http_status(),
            headers: vec![("content-type".to_owned(), "text/plain".to_owned())],
            body: err.to_string().into_bytes(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_manifest_then_refuses_bad_requests() {
        let prepared = publish().unwrap();
        let ok: [(&str, &[u8]); 3] = [
            ("expo-platform", b"android"),
            ("expo-runtime-version", b"1.0.0"),
            ("expo-protocol-version", b"1"),
        ];
        let reply = answer(&prepared, "GET", &ok);
        assert_eq!(reply.status, 200);
        assert!(
            reply
                .headers
                .iter()
                .any(|(n, v)| n == "content-type" && v.starts_with("multipart/mixed; boundary="))
        );
        assert!(
            String::from_utf8(reply.body)
                .unwrap()
                .contains("content-disposition: inline; name=\"manifest\"")
        );

        assert_eq!(answer(&prepared, "POST", &ok).status, 405);
        let missing_runtime = answer(&prepared, "GET", &ok[..1]);
        assert_eq!(missing_runtime.status, 400);
        assert!(
            String::from_utf8(missing_runtime.body)
                .unwrap()
                .contains("expo-runtime-version")
        );
    }
}
