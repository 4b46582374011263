//! Build and sign the manifests of an `expo export`, as a deploy tool does.
//!
//! ```sh
//! cargo run -p otago-examples --example build_and_sign [APP_DIR]
//! ```
//! `APP_DIR` holds the export in `dist/` (or `exports/v1/`, as the example app in this
//! repository, the default), `app.json`, `expo-config.public.json` and `keys/private-key.pem`.

use std::collections::BTreeMap;
use std::error::Error;
use std::path::Path;
use std::time::SystemTime;

use otago_core::{
    DescribedPlatform, ExportMetadata, Manifest, ManifestSpec, Platform, SignatureHeader,
    SigningKey, Timestamp, UpdateId, Workflow, resolve_runtime_version,
};

fn main() -> Result<(), Box<dyn Error>> {
    let app_dir = std::env::args_os()
        .nth(1)
        .map_or_else(otago_examples::example_app_dir, Into::into);
    for update in build_and_sign(&app_dir)? {
        println!(
            "{}: {} manifest bytes",
            update.platform,
            update.manifest.len()
        );
        println!("  expo-signature: {}", update.signature.to_header_value());
    }
    Ok(())
}

/// One platform's update, ready to publish.
struct SignedUpdate {
    platform: Platform,
    /// The exact manifest bytes: signed here, served verbatim by the server.
    manifest: Vec<u8>,
    signature: SignatureHeader,
}

/// Builds and signs the manifest of every platform in the export.
fn build_and_sign(app_dir: &Path) -> Result<Vec<SignedUpdate>, Box<dyn Error>> {
    let export_dir = ["dist", "exports/v1"]
        .map(|name| app_dir.join(name))
        .into_iter()
        .find(|dir| dir.join("metadata.json").exists())
        .ok_or("no dist/metadata.json (nor exports/v1/metadata.json) in APP_DIR")?;
    let metadata = ExportMetadata::parse(&std::fs::read(export_dir.join("metadata.json"))?)?;
    let app_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(app_dir.join("app.json"))?)?;
    let public_config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(app_dir.join("expo-config.public.json"))?)?;
    let key = SigningKey::from_pem(&std::fs::read_to_string(
        app_dir.join("keys/private-key.pem"),
    )?)?;
    let keyid = app_json["expo"]["updates"]["codeSigningMetadata"]["keyid"]
        .as_str()
        .unwrap_or("root");

    // Time and randomness come from the caller: the core never reads a clock or the OS RNG.
    let now = Timestamp::from_system_time(SystemTime::now())?;
    let mut signed = Vec::new();
    for (&platform, export) in &metadata.platforms {
        let runtime_version = resolve_runtime_version(&app_json, platform, Workflow::Managed)?
            .as_resolved()
            .ok_or(
                "this example does not run `expo-updates fingerprint:generate`; use another policy",
            )?
            .to_owned();
        let files = DescribedPlatform::describe(platform, export, |path| {
            std::fs::read(export_dir.join(path.as_str())).ok()
        })?;
        let manifest = Manifest::build(ManifestSpec {
            id: UpdateId::from_random_bytes(rand::random()),
            created_at: now,
            runtime_version,
            launch_asset: files.launch_asset.description,
            assets: files
                .assets
                .into_iter()
                .map(|file| file.description)
                .collect(),
            asset_base_url: "https://updates.example.com/assets".to_owned(),
            metadata: BTreeMap::new(),
            expo_client: Some(public_config.clone()),
        })?;
        let bytes = manifest.to_bytes();
        let signature = SignatureHeader::new(key.sign(&bytes), keyid)?;
        signed.push(SignedUpdate {
            platform,
            manifest: bytes,
            signature,
        });
    }
    Ok(signed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_every_platform_of_the_example_export() {
        let app_dir = otago_examples::example_app_dir();
        let signed = build_and_sign(&app_dir).unwrap();
        assert_eq!(signed.len(), 2);
        let certificate = otago_core::SigningCertificate::from_pem(
            &std::fs::read_to_string(app_dir.join("certs/certificate.pem")).unwrap(),
        )
        .unwrap();
        for update in &signed {
            certificate
                .verify(&update.manifest, update.signature.signature())
                .unwrap();
            let manifest = Manifest::parse(&update.manifest).unwrap();
            assert_eq!(manifest.to_bytes(), update.manifest);
            assert_eq!(manifest.runtime_version, "1.0.0");
        }
    }
}
