//! Asset identity: the `hash`, `key`, content type and file extension of a file.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use md5::Md5;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::{Error, Result};

/// The content type of every launch asset (the JavaScript or Hermes bundle).
pub const LAUNCH_ASSET_CONTENT_TYPE: &str = "application/javascript";

/// The manifest `hash` of some bytes: base64url SHA-256 without padding (43 characters).
#[must_use]
pub fn asset_hash(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(bytes))
}

/// The manifest `key` of some bytes: the lowercase hex MD5, as Metro names assets.
///
/// Keys are content-addressed, so equal keys always mean equal bytes.
#[must_use]
pub fn asset_key(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

/// [`asset_hash`] and [`asset_key`] computed incrementally, for bytes that arrive in pieces
/// (an upload streamed to disk) and should never be held whole in memory.
#[derive(Debug, Clone, Default)]
pub struct AssetHasher {
    sha256: Sha256,
    md5: Md5,
}

impl AssetHasher {
    /// Feeds the next piece of the bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha256.update(bytes);
        self.md5.update(bytes);
    }

    /// `(hash, key)` of everything fed, as [`asset_hash`] and [`asset_key`] give them.
    #[must_use]
    pub fn finish(self) -> (String, String) {
        (
            URL_SAFE_NO_PAD.encode(self.sha256.finalize()),
            hex::encode(self.md5.finalize()),
        )
    }
}

/// Whether `hash` has the shape of an asset hash: 43 characters of the base64url alphabet.
#[must_use]
pub fn is_asset_hash(hash: &str) -> bool {
    hash.len() == 43
        && hash
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The content type for a file extension (with or without its leading dot), from the
/// maintained `mime_guess` table; `application/octet-stream` when unknown.
#[must_use]
pub fn content_type_for_extension(ext: &str) -> String {
    mime_guess::from_ext(ext.trim_start_matches('.'))
        .first_raw()
        .unwrap_or("application/octet-stream")
        .to_owned()
}

/// The content types the asset CDN serves as themselves: images, fonts, audio and video
/// (as [`content_type_for_extension`] names them), the bundle, JSON and plain text. None is
/// one a browser opens as a document that can run script.
const SERVED_CONTENT_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/bmp",
    "image/x-icon",
    "image/vnd.microsoft.icon",
    "image/avif",
    "image/heic",
    "image/heif",
    "image/tiff",
    "font/ttf",
    "font/otf",
    "font/woff",
    "font/woff2",
    "font/collection",
    "application/font-woff",
    "application/x-font-ttf",
    "application/font-sfnt",
    "audio/mpeg",
    "audio/mp4",
    "audio/m4a",
    "audio/aac",
    "audio/wav",
    "audio/x-wav",
    "audio/ogg",
    "audio/flac",
    "audio/webm",
    "video/mp4",
    "video/quicktime",
    "video/webm",
    "video/ogg",
    LAUNCH_ASSET_CONTENT_TYPE,
    "text/javascript",
    "application/json",
    "application/wasm",
    "text/plain",
    "application/octet-stream",
];

/// The content type the asset CDN sends for an asset uploaded as `declared`: the entry of the
/// server's own table that matches its media type (parameters and case aside), else
/// `application/octet-stream`. What an uploader says is never sent back as is, so an asset
/// cannot be served as HTML, SVG, XML or anything else a browser would run.
#[must_use]
pub fn served_content_type(declared: &str) -> &'static str {
    let essence = declared.split(';').next().unwrap_or_default().trim();
    SERVED_CONTENT_TYPES
        .iter()
        .find(|served| served.eq_ignore_ascii_case(essence))
        .copied()
        .unwrap_or("application/octet-stream")
}

/// A file extension with exactly one leading dot, as manifests carry it.
#[must_use]
pub fn dotted_extension(ext: &str) -> String {
    format!(".{}", ext.trim_start_matches('.'))
}

/// Refuses a key plus extension that clients would refuse as a file name:
/// empty, `.`, `..`, or containing `/`, `\` or NUL.
///
/// # Errors
/// [`Error::UnsafeAssetName`] naming the offending file name.
pub fn check_safe_file_name(key: &str, file_extension: &str) -> Result<()> {
    let name = format!("{key}{file_extension}");
    let unsafe_name = key.is_empty()
        || name == "."
        || name == ".."
        || key == "."
        || key == ".."
        || name.contains(['/', '\\', '\0']);
    if unsafe_name {
        return Err(Error::UnsafeAssetName { name });
    }
    Ok(())
}

/// Everything a manifest and a server need to know about one asset file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetDescription {
    /// base64url SHA-256 of the bytes, without padding.
    pub hash: String,
    /// Lowercase hex MD5 of the bytes.
    pub key: String,
    /// MIME type served with the asset.
    pub content_type: String,
    /// Extension with its leading dot, e.g. `.png`.
    pub file_extension: String,
    /// Size in bytes.
    pub size: u64,
}

impl AssetDescription {
    /// Describes an ordinary asset from its bytes and the `ext` that `metadata.json` gives it.
    ///
    /// # Errors
    /// [`Error::UnsafeAssetName`] when the extension would make an unsafe file name.
    pub fn of_asset(bytes: &[u8], ext: &str) -> Result<Self> {
        let description = Self {
            hash: asset_hash(bytes),
            key: asset_key(bytes),
            content_type: content_type_for_extension(ext),
            file_extension: dotted_extension(ext),
            size: bytes.len() as u64,
        };
        check_safe_file_name(&description.key, &description.file_extension)?;
        Ok(description)
    }

    /// Describes a launch asset (the bundle) from its bytes and its file extension.
    ///
    /// # Errors
    /// [`Error::UnsafeAssetName`] when the extension would make an unsafe file name.
    pub fn of_launch_asset(bytes: &[u8], ext: &str) -> Result<Self> {
        let mut description = Self::of_asset(bytes, ext)?;
        LAUNCH_ASSET_CONTENT_TYPE.clone_into(&mut description.content_type);
        Ok(description)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_content_types_come_from_the_table() {
        for ext in [
            "png", "jpg", "jpeg", "gif", "webp", "bmp", "ico", "ttf", "otf", "woff", "woff2",
            "mp3", "m4a", "aac", "wav", "ogg", "mp4", "mov", "webm", "json", "txt", "js", "hbc",
        ] {
            let declared = content_type_for_extension(ext);
            assert_eq!(served_content_type(&declared), declared, "{ext}");
        }
        assert_eq!(served_content_type("IMAGE/PNG; q=1"), "image/png");
        for refused in [
            "text/html",
            "TEXT/HTML; charset=utf-8",
            "image/svg+xml",
            "application/xhtml+xml",
            "text/xml",
            "application/pdf",
            "image/png/x",
            "",
        ] {
            assert_eq!(
                served_content_type(refused),
                "application/octet-stream",
                "{refused}"
            );
        }
    }

    #[test]
    fn hash_is_unpadded_base64url_sha256() {
        // printf 'abc' | openssl dgst -sha256 -binary | basenc --base64url
        assert_eq!(
            asset_hash(b"abc"),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
        assert!(is_asset_hash(&asset_hash(b"")));
        assert!(!is_asset_hash(
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        ));
    }

    #[test]
    fn incremental_hashing_agrees_with_whole_bytes() {
        let mut hasher = AssetHasher::default();
        hasher.update(b"ab");
        hasher.update(b"c");
        assert_eq!(hasher.finish(), (asset_hash(b"abc"), asset_key(b"abc")));
    }

    #[test]
    fn key_is_md5_hex() {
        assert_eq!(asset_key(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn content_types_come_from_the_mime_table() {
        assert_eq!(content_type_for_extension("png"), "image/png");
        assert_eq!(content_type_for_extension(".ttf"), "font/ttf");
        assert_eq!(
            content_type_for_extension("nope-not-real"),
            "application/octet-stream"
        );
    }

    #[test]
    fn unsafe_file_names_are_refused() {
        for (key, ext) in [
            ("", ".png"),
            ("..", ""),
            (".", ""),
            ("a/b", ".png"),
            ("a", ".p\\g"),
            ("a\0", ""),
        ] {
            assert!(
                check_safe_file_name(key, ext).is_err(),
                "{key:?}{ext:?} must be refused"
            );
        }
        assert!(check_safe_file_name("0123abcd", ".png").is_ok());
    }

    #[test]
    fn launch_assets_are_javascript() {
        let bundle = AssetDescription::of_launch_asset(b"bytecode", "hbc").unwrap();
        assert_eq!(bundle.content_type, LAUNCH_ASSET_CONTENT_TYPE);
        assert_eq!(bundle.file_extension, ".hbc");
        assert_eq!(bundle.size, 8);
    }
}
