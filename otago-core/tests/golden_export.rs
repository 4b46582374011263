//! Golden tests on the real `expo export` fixture: every launch asset and asset of
//! dist-v1 and dist-v2, on both platforms, hashes to literals obtained independently
//! (`openssl dgst -sha256 -binary | basenc --base64url` and `md5sum`).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // tests read the fixture

use otago_core::{AssetDescription, ExportMetadata, Platform};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/expo-sdk56"
);

/// (export, platform, path, hash, key)
const GOLDEN: &[(&str, Platform, &str, &str, &str)] = &[
    (
        "dist-v1",
        Platform::Android,
        "_expo/static/js/android/index-b3cda7561d1345808bdc84bb4e478f12.hbc",
        "cPIAt51p6CiYlW7adCw4IHpnPr5wthQYe9E1vj4ERyY",
        "f056361ad3e17a80367d93f69123003a",
    ),
    (
        "dist-v1",
        Platform::Ios,
        "_expo/static/js/ios/index-0e63ac84fbed243efbc2880f4cb64c2f.hbc",
        "H0OX7vI9Rh2KcvrXnnAJIhnoxIRduuGbWbLiFmitPhY",
        "68e764268ac3b4e5b34fd371f3fbc11f",
    ),
    (
        "dist-v2",
        Platform::Android,
        "_expo/static/js/android/index-f9b31bbe4191924e6f5c5f723ab09d0a.hbc",
        "fRpFlTLAG5I_5SJ-C4qw-qSDERNdfdtz3c85qEWlKK8",
        "aa620b327e17e531afd1ce6b0bda0253",
    ),
    (
        "dist-v2",
        Platform::Ios,
        "_expo/static/js/ios/index-6a33e65cf0608d245220d8f3d2014e58.hbc",
        "cT9Zg23o5KF-XWjT6w1G1pp1PIueulo3-Eky4lIfxic",
        "0e56fea517996777f8c5cb21b5dd0980",
    ),
];

/// The three assets, identical in both exports and on both platforms: (path, ext, hash, key, content type).
const ASSETS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "assets/3523082802aefe220c051eaed39a7a91",
        "ttf",
        "W8YHdzvDpyIYk2mKdhQxQkr9Vmt6UMOPic38oaFHtzs",
        "3523082802aefe220c051eaed39a7a91",
        "font/ttf",
    ),
    (
        "assets/b8705599ac8b36d2971a5bed3e7aa7db",
        "png",
        "HNy7BYkKI5AU6BU1K8rwzVod7vtxeOxrVBsaHYcfSBY",
        "b8705599ac8b36d2971a5bed3e7aa7db",
        "image/png",
    ),
    (
        "assets/ddee97c3372f9909e31aa43b3f3fdbd0",
        "png",
        "YL9ry49u_ray192TEdBQg5B9Vn4tFEzFpIQtUNjA8UA",
        "ddee97c3372f9909e31aa43b3f3fdbd0",
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
    for export in ["dist-v1", "dist-v2"] {
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
