//! The manifest JSON of one update, built deterministically so that the bytes the
//! deployer signs are the bytes the server serves.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::asset::{AssetDescription, check_safe_file_name, is_asset_hash};
use crate::{Error, Result, Timestamp};

/// The id of an update: a UUID, always written in lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UpdateId(Uuid);

impl UpdateId {
    /// A new random (version 4) id from 16 caller-supplied random bytes.
    #[must_use]
    pub fn from_random_bytes(bytes: [u8; 16]) -> Self {
        Self(uuid::Builder::from_random_bytes(bytes).into_uuid())
    }
}

impl FromStr for UpdateId {
    type Err = Error;

    /// Parses a canonical (hyphenated) UUID in any case.
    fn from_str(text: &str) -> Result<Self> {
        if text.len() != 36 {
            return Err(Error::InvalidManifest {
                reason: format!("`{}` is not a hyphenated UUID", text.escape_debug()),
            });
        }
        Uuid::try_parse(text)
            .map(Self)
            .map_err(|_| Error::InvalidManifest {
                reason: format!("`{}` is not a hyphenated UUID", text.escape_debug()),
            })
    }
}

impl fmt::Display for UpdateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl Serialize for UpdateId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for UpdateId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// One asset as a manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestAsset {
    /// base64url SHA-256 of the bytes, without padding.
    pub hash: String,
    /// Content-addressed key (hex MD5).
    pub key: String,
    /// MIME type.
    pub content_type: String,
    /// Extension with a leading dot; absent on the launch asset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_extension: Option<String>,
    /// Absolute URL the client downloads the asset from.
    pub url: String,
}

/// A manifest as the Expo Updates protocol defines it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Unique id of this update.
    pub id: UpdateId,
    /// When the update was published.
    pub created_at: Timestamp,
    /// The runtime version the update runs on.
    pub runtime_version: String,
    /// The bundle the app runs.
    pub launch_asset: ManifestAsset,
    /// Every other asset.
    pub assets: Vec<ManifestAsset>,
    /// String metadata that manifest filters look at.
    pub metadata: BTreeMap<String, String>,
    /// Free-form extras; `expoClient` holds the app's public config.
    pub extra: Map<String, Value>,
}

/// What a manifest is built from: every value comes from the caller.
#[derive(Debug, Clone)]
pub struct ManifestSpec {
    /// The new update's id (see [`UpdateId::from_random_bytes`]).
    pub id: UpdateId,
    /// The publish time.
    pub created_at: Timestamp,
    /// The resolved runtime version.
    pub runtime_version: String,
    /// The bundle.
    pub launch_asset: AssetDescription,
    /// The other assets, in export order.
    pub assets: Vec<AssetDescription>,
    /// Absolute base URL assets are served from, e.g. `https://updates.example.com/assets`.
    pub asset_base_url: String,
    /// String metadata (e.g. a message or a git commit).
    pub metadata: BTreeMap<String, String>,
    /// The app's public config (`npx expo config --json --type public`), put in `extra.expoClient`.
    pub expo_client: Option<Value>,
}

/// The absolute URL of an asset: the base URL and the asset's hash.
///
/// # Errors
/// [`Error::InvalidManifest`] when the base is not an absolute http(s) URL.
pub fn asset_url(asset_base_url: &str, hash: &str) -> Result<String> {
    check_absolute_url(asset_base_url)?;
    Ok(format!("{}/{hash}", asset_base_url.trim_end_matches('/')))
}

fn check_absolute_url(url: &str) -> Result<()> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .filter(|rest| !rest.is_empty() && !rest.starts_with('/'))
        .filter(|_| !url.contains(|c: char| c.is_whitespace() || c.is_control()));
    match rest {
        Some(_) => Ok(()),
        None => Err(Error::InvalidManifest {
            reason: format!("`{}` is not an absolute http(s) URL", url.escape_debug()),
        }),
    }
}

impl ManifestAsset {
    fn from_description(
        description: &AssetDescription,
        base: &str,
        with_extension: bool,
    ) -> Result<Self> {
        Ok(Self {
            hash: description.hash.clone(),
            key: description.key.clone(),
            content_type: description.content_type.clone(),
            file_extension: with_extension.then(|| description.file_extension.clone()),
            url: asset_url(base, &description.hash)?,
        })
    }
}

impl Manifest {
    /// Builds the manifest of one update for one platform.
    ///
    /// # Errors
    /// [`Error::InvalidManifest`] for an empty runtime version or a base URL that is not absolute;
    /// [`Error::UnsafeAssetName`] for an asset whose key and extension are not a safe file name.
    pub fn build(spec: ManifestSpec) -> Result<Self> {
        let mut extra = Map::new();
        if let Some(expo_client) = spec.expo_client {
            extra.insert("expoClient".to_owned(), expo_client);
        }
        let manifest = Self {
            id: spec.id,
            created_at: spec.created_at,
            runtime_version: spec.runtime_version,
            launch_asset: ManifestAsset::from_description(
                &spec.launch_asset,
                &spec.asset_base_url,
                false,
            )?,
            assets: spec
                .assets
                .iter()
                .map(|asset| ManifestAsset::from_description(asset, &spec.asset_base_url, true))
                .collect::<Result<_>>()?,
            metadata: spec.metadata,
            extra,
        };
        manifest.validate()?;
        Ok(manifest)
    }

    /// The exact bytes to sign and serve: compact JSON in a fixed field order.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain structs, strings and maps cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses and checks manifest bytes (e.g. those a deployer publishes).
    ///
    /// # Errors
    /// [`Error::InvalidManifest`] naming the first field that breaks the protocol's rules;
    /// [`Error::UnsafeAssetName`] for an unsafe key or extension.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let manifest: Self =
            serde_json::from_slice(bytes).map_err(|err| Error::InvalidManifest {
                reason: format!("not a manifest: {err}"),
            })?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// The launch asset followed by every other asset.
    pub fn all_assets(&self) -> impl Iterator<Item = &ManifestAsset> {
        std::iter::once(&self.launch_asset).chain(&self.assets)
    }

    fn validate(&self) -> Result<()> {
        let invalid = |reason: String| Err(Error::InvalidManifest { reason });
        if self.runtime_version.is_empty() {
            return invalid("runtimeVersion is empty".to_owned());
        }
        if self.launch_asset.file_extension.is_some() {
            return invalid("launchAsset must not carry fileExtension".to_owned());
        }
        for asset in self.all_assets() {
            if !is_asset_hash(&asset.hash) {
                return invalid(format!(
                    "asset hash `{}` is not 43 base64url characters",
                    asset.hash.escape_debug()
                ));
            }
            check_absolute_url(&asset.url)?;
            if asset.content_type.is_empty() {
                return invalid(format!(
                    "asset `{}` has no contentType",
                    asset.key.escape_debug()
                ));
            }
        }
        for asset in &self.assets {
            let extension = asset.file_extension.as_deref().unwrap_or_default();
            if !extension.starts_with('.') {
                return invalid(format!(
                    "asset `{}` needs a fileExtension starting with `.`",
                    asset.key.escape_debug()
                ));
            }
            check_safe_file_name(&asset.key, extension)?;
        }
        check_safe_file_name(&self.launch_asset.key, "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ManifestSpec {
        ManifestSpec {
            id: UpdateId::from_random_bytes([7; 16]),
            created_at: Timestamp::from_unix_millis(1_735_787_045_678).unwrap(),
            runtime_version: "1.2.3".into(),
            launch_asset: AssetDescription::of_launch_asset(b"bundle", "hbc").unwrap(),
            assets: vec![AssetDescription::of_asset(b"png bytes", "png").unwrap()],
            asset_base_url: "https://cdn.example.com/assets/".into(),
            metadata: BTreeMap::new(),
            expo_client: Some(serde_json::json!({"name": "App"})),
        }
    }

    #[test]
    fn ids_are_lowercase_v4_uuids_and_parse_in_any_case() {
        let id = UpdateId::from_random_bytes([0xAB; 16]);
        let text = id.to_string();
        assert_eq!(text, text.to_lowercase());
        assert_eq!(&text[14..15], "4");
        assert_eq!(text.to_uppercase().parse::<UpdateId>().unwrap(), id);
        assert!("abababab".parse::<UpdateId>().is_err());
        assert!(
            "abababababababababababababababab"
                .parse::<UpdateId>()
                .is_err()
        );
    }

    #[test]
    fn built_manifest_has_protocol_shape() {
        let manifest = Manifest::build(spec()).unwrap();
        let json: Value = serde_json::from_slice(&manifest.to_bytes()).unwrap();
        assert_eq!(json["createdAt"], "2025-01-02T03:04:05.678Z");
        assert!(json["launchAsset"].get("fileExtension").is_none());
        assert_eq!(json["launchAsset"]["contentType"], "application/javascript");
        assert_eq!(json["assets"][0]["fileExtension"], ".png");
        let url = json["assets"][0]["url"].as_str().unwrap();
        assert!(
            url.starts_with("https://cdn.example.com/assets/") && !url.contains("//assets//"),
            "{url}"
        );
        assert_eq!(json["extra"]["expoClient"]["name"], "App");
        assert_eq!(json["metadata"], serde_json::json!({}));
    }

    #[test]
    fn bytes_are_deterministic_and_parse_back() {
        let a = Manifest::build(spec()).unwrap().to_bytes();
        let b = Manifest::build(spec()).unwrap().to_bytes();
        assert_eq!(a, b);
        assert_eq!(Manifest::parse(&a).unwrap().to_bytes(), a);
    }

    #[test]
    fn relative_base_urls_are_refused() {
        let mut relative = spec();
        relative.asset_base_url = "/assets".into();
        assert!(matches!(
            Manifest::build(relative),
            Err(Error::InvalidManifest { .. })
        ));
    }

    #[test]
    fn parse_refuses_broken_manifests() {
        let good: Value =
            serde_json::from_slice(&Manifest::build(spec()).unwrap().to_bytes()).unwrap();
        let breakages: [(&str, Value); 4] = [
            ("/createdAt", Value::from("2025-01-02T03:04:05Z")),
            ("/assets/0/fileExtension", Value::from("png")),
            ("/assets/0/key", Value::from("../x")),
            ("/launchAsset/hash", Value::from("short")),
        ];
        for (pointer, value) in breakages {
            let mut broken = good.clone();
            *broken.pointer_mut(pointer).unwrap() = value;
            let bytes = serde_json::to_vec(&broken).unwrap();
            assert!(
                Manifest::parse(&bytes).is_err(),
                "{pointer} must be refused"
            );
        }
    }
}
