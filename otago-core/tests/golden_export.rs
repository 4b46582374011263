//! Golden tests on the example app's two real `expo export`s: every launch asset and asset of
//! exports/v1 and exports/v2, on both platforms, hashes to literals obtained independently
//! (`openssl dgst -sha256 -binary | basenc --base64url` and `md5sum`).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // tests read the fixture

use otago_core::{AssetDescription, ExportMetadata, Platform};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/expo-app");

/// (export, platform, path, hash, key); the commands that computed them are in
/// examples/expo-app/GOLDEN.md.
const GOLDEN: &[(&str, Platform, &str, &str, &str)] = &[
    (
        "exports/v1",
        Platform::Android,
        "_expo/static/js/android/index-7271115a55d7c1fdee4e4ea6aa317dcf.hbc",
        "IGx5kzjr9BZ3i8_AfR-bFDdAzn9jumlnw5WCaNSS2dw",
        "d22123d0c9aa2acff70c9cb181409a2d",
    ),
    (
        "exports/v1",
        Platform::Ios,
        "_expo/static/js/ios/index-17db1bcc5eb02aebfc93514b328cbb77.hbc",
        "wwHDNb1EgGqHcGh_CGgcGIAAjiGHJM8ART5k-dVJyKg",
        "6356d5c6e7b26329e2b1b76600ac5bf0",
    ),
    (
        "exports/v2",
        Platform::Android,
        "_expo/static/js/android/index-4e699408b12b7192f891cd77cefac1b9.hbc",
        "2DdhaJIJZ9FHFsLt4jDfa6L6obns5lpL693fJ7dUX_I",
        "8e8caf82efe8b05683b5010ccca273fd",
    ),
    (
        "exports/v2",
        Platform::Ios,
        "_expo/static/js/ios/index-00a3d570fc8c0ce5371590dd50230874.hbc",
        "oF-4qHNfQX-h6Oo7wfrQYKzYmWDN6OvxIctuJvrlssM",
        "fd58a2cb92880bab38661731c29b2572",
    ),
];

/// The three assets, identical in both exports and on both platforms: (path, ext, hash, key, content type).
const ASSETS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "assets/facc97ed08d5905ea2ff8a166e3e22f6",
        "ttf",
        "fL_9vrNtgeioRwLvCzltdIR0BcNxe3D63ZwTGQGnLFw",
        "facc97ed08d5905ea2ff8a166e3e22f6",
        "font/ttf",
    ),
    (
        "assets/132c75f3562526da642197f0fcaa9509",
        "png",
        "HApQfGnxLo8fdL3FZxL1OfVupTj-ON-GOsszJjCN3-Q",
        "132c75f3562526da642197f0fcaa9509",
        "image/png",
    ),
    (
        "assets/c94369674bfb018ba2eaa7fcbd438312",
        "png",
        "2Fu5jtZ3dt1XDBNygiTrlbzxd2IHtY_NnZyUy6-2BHQ",
        "c94369674bfb018ba2eaa7fcbd438312",
        "image/png",
    ),
];

fn read(export: &str, path: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURE}/{export}/{path}")).unwrap()
}

#[test]
fn launch_assets_hash_to_golden_values() {
    for &(export, platform, path, hash, key) in GOLDEN {
        let metadata = ExportMetadata::parse(&read(export, "metadata.json")).unwrap();
        let bundle = &metadata.platform(platform).unwrap().bundle;
        assert_eq!(bundle.as_str(), path, "{export} {platform}");
        let description =
            AssetDescription::of_launch_asset(&read(export, path), bundle.extension().unwrap())
                .unwrap();
        assert_eq!(description.hash, hash, "{export} {platform} hash");
        assert_eq!(description.key, key, "{export} {platform} key");
        assert_eq!(description.content_type, "application/javascript");
    }
}

#[test]
fn assets_hash_to_golden_values_on_every_export_and_platform() {
    for export in ["exports/v1", "exports/v2"] {
        let metadata = ExportMetadata::parse(&read(export, "metadata.json")).unwrap();
        for platform in Platform::ALL {
            let listed = &metadata.platform(platform).unwrap().assets;
            assert_eq!(listed.len(), ASSETS.len());
            for (asset, &(path, ext, hash, key, content_type)) in listed.iter().zip(ASSETS) {
                assert_eq!((asset.path.as_str(), asset.ext.as_str()), (path, ext));
                let description = AssetDescription::of_asset(&read(export, path), ext).unwrap();
                assert_eq!(description.hash, hash, "{export} {platform} {path}");
                assert_eq!(description.key, key, "{export} {platform} {path}");
                assert_eq!(description.content_type, content_type);
                assert_eq!(description.file_extension, format!(".{ext}"));
                // Metro names asset files by the MD5 of their bytes: the key is content-addressed.
                assert!(path.ends_with(&description.key));
            }
        }
    }
}
