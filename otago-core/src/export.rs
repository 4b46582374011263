//! Reading the `metadata.json` that `npx expo export` writes.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::{AssetDescription, Error, Platform, Result};

/// A path inside an export folder, checked to stay inside it.
///
/// Paths are opaque: both the `_expo/static/js/...` layout of current Expo and the older
/// `bundles/...` one are accepted. Absolute paths, `..` segments, backslashes and NUL are refused.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExportPath(String);

impl ExportPath {
    /// Checks a relative path from `metadata.json`.
    ///
    /// # Errors
    /// [`Error::UnsafePath`] when the path is empty, absolute or escapes the folder.
    pub fn new(path: &str) -> Result<Self> {
        let escapes = path.is_empty()
            || path.starts_with('/')
            || path.contains(['\\', '\0', ':'])
            || path
                .split('/')
                .any(|segment| segment == ".." || segment.is_empty());
        if escapes {
            return Err(Error::UnsafePath {
                path: path.to_owned(),
            });
        }
        Ok(Self(path.to_owned()))
    }

    /// The path as written in `metadata.json`, with `/` separators.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path's extension without the dot (`hbc` for `index-abc.hbc`), if it has one.
    #[must_use]
    pub fn extension(&self) -> Option<&str> {
        let file_name = self.0.rsplit('/').next()?;
        file_name
            .rsplit_once('.')
            .map(|(_, ext)| ext)
            .filter(|ext| !ext.is_empty())
    }
}

/// One asset listed for a platform: its path and the extension it had in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportAsset {
    /// Where the file is, relative to the export folder.
    pub path: ExportPath,
    /// Extension without a dot, e.g. `png`.
    pub ext: String,
}

/// What the export holds for one platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformExport {
    /// The launch asset (JavaScript or Hermes bytecode bundle).
    pub bundle: ExportPath,
    /// The other assets.
    pub assets: Vec<ExportAsset>,
}

impl PlatformExport {
    /// Every file this platform needs, bundle first.
    pub fn files(&self) -> impl Iterator<Item = &ExportPath> {
        std::iter::once(&self.bundle).chain(self.assets.iter().map(|asset| &asset.path))
    }
}

/// A parsed `metadata.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportMetadata {
    /// The format version (`0` for every current Expo).
    pub version: u64,
    /// The bundler that made the export, e.g. `metro`.
    pub bundler: String,
    /// What the export holds per platform; platforms Otago does not serve (web) are left out.
    pub platforms: BTreeMap<Platform, PlatformExport>,
}

#[derive(Deserialize)]
struct RawMetadata {
    version: u64,
    bundler: String,
    #[serde(rename = "fileMetadata")]
    file_metadata: BTreeMap<String, RawPlatform>,
}

#[derive(Deserialize)]
struct RawPlatform {
    bundle: String,
    #[serde(default)]
    assets: Vec<RawAsset>,
}

#[derive(Deserialize)]
struct RawAsset {
    path: String,
    ext: String,
}

impl ExportMetadata {
    /// Parses the bytes of `metadata.json`.
    ///
    /// # Errors
    /// [`Error::InvalidExport`] when the JSON is malformed or names no platform Otago serves;
    /// [`Error::UnsafePath`] when a path escapes the export folder.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let raw: RawMetadata =
            serde_json::from_slice(bytes).map_err(|err| Error::InvalidExport {
                reason: format!("metadata.json is not valid: {err}"),
            })?;
        let mut platforms = BTreeMap::new();
        for (name, raw_platform) in raw.file_metadata {
            let Ok(platform) = name.parse::<Platform>() else {
                continue;
            };
            let assets = raw_platform
                .assets
                .into_iter()
                .map(|asset| {
                    Ok(ExportAsset {
                        path: ExportPath::new(&asset.path)?,
                        ext: asset.ext,
                    })
                })
                .collect::<Result<_>>()?;
            platforms.insert(
                platform,
                PlatformExport {
                    bundle: ExportPath::new(&raw_platform.bundle)?,
                    assets,
                },
            );
        }
        if platforms.is_empty() {
            return Err(Error::InvalidExport {
                reason: "fileMetadata has neither `ios` nor `android`; export with `--platform ios`, `android` or `all`".to_owned(),
            });
        }
        Ok(Self {
            version: raw.version,
            bundler: raw.bundler,
            platforms,
        })
    }

    /// What the export holds for `platform`.
    ///
    /// # Errors
    /// [`Error::InvalidExport`] when the export was made without that platform.
    pub fn platform(&self, platform: Platform) -> Result<&PlatformExport> {
        self.platforms.get(&platform).ok_or_else(|| Error::InvalidExport {
            reason: format!("the export has no `{platform}` bundle; export with `--platform {platform}` or `all`"),
        })
    }
}

/// One file of an export, described for a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedFile {
    /// Where the file is in the export.
    pub path: ExportPath,
    /// Its hash, key, content type, extension and size.
    pub description: AssetDescription,
}

/// The launch asset and assets of one platform, hashed and checked against `metadata.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedPlatform {
    /// The platform.
    pub platform: Platform,
    /// The bundle.
    pub launch_asset: DescribedFile,
    /// Every other asset, in export order.
    pub assets: Vec<DescribedFile>,
}

impl DescribedPlatform {
    /// Hashes every file `export` lists for `platform`. `read` gives a file's bytes, or `None`
    /// when the file is missing; it is called once per file, bundle first.
    ///
    /// # Errors
    /// [`Error::InvalidExport`] when a listed file is missing, or when an asset file named by an
    /// MD5 (as Metro names them) does not have that MD5: the files do not match `metadata.json`.
    pub fn describe(
        platform: Platform,
        export: &PlatformExport,
        mut read: impl FnMut(&ExportPath) -> Option<Vec<u8>>,
    ) -> Result<Self> {
        let mut bytes_of = |path: &ExportPath| {
            read(path).ok_or_else(|| Error::InvalidExport {
                reason: format!(
                    "`{}` is listed in metadata.json but missing; re-run `npx expo export`",
                    path.as_str()
                ),
            })
        };
        let bundle_bytes = bytes_of(&export.bundle)?;
        let bundle_ext = export.bundle.extension().unwrap_or("js");
        let launch_asset = DescribedFile {
            path: export.bundle.clone(),
            description: AssetDescription::of_launch_asset(&bundle_bytes, bundle_ext)?,
        };
        drop(bundle_bytes);
        let assets = export
            .assets
            .iter()
            .map(|asset| {
                let description = AssetDescription::of_asset(&bytes_of(&asset.path)?, &asset.ext)?;
                check_named_by_md5(&asset.path, &description.key)?;
                Ok(DescribedFile {
                    path: asset.path.clone(),
                    description,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            platform,
            launch_asset,
            assets,
        })
    }

    /// The bundle followed by every other asset.
    pub fn files(&self) -> impl Iterator<Item = &DescribedFile> {
        std::iter::once(&self.launch_asset).chain(&self.assets)
    }
}

/// Metro names asset files by the MD5 of their bytes; a file whose name is an MD5 but whose
/// bytes are not has been changed after the export.
fn check_named_by_md5(path: &ExportPath, key: &str) -> Result<()> {
    let file_name = path.as_str().rsplit('/').next().unwrap_or_default();
    let stem = file_name.split('.').next().unwrap_or_default();
    let named_by_md5 = stem.len() == 32 && stem.bytes().all(|b| b.is_ascii_hexdigit());
    if named_by_md5 && !stem.eq_ignore_ascii_case(key) {
        return Err(Error::InvalidExport {
            reason: format!(
                "`{}` does not match metadata.json: its MD5 is {key}; the export was changed after `npx expo export`, export again",
                path.as_str()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_escape_the_export_are_refused() {
        for path in [
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "a\\b",
            "",
            "c:x",
            "a/./..",
        ] {
            assert!(ExportPath::new(path).is_err(), "{path:?} must be refused");
        }
        assert_eq!(
            ExportPath::new("bundles/ios-abc.js").unwrap().extension(),
            Some("js")
        );
        assert_eq!(
            ExportPath::new("assets/3523082802aefe220c051eaed39a7a91")
                .unwrap()
                .extension(),
            None
        );
    }

    #[test]
    fn older_bundles_layout_parses() {
        let json = br#"{"version":0,"bundler":"metro","fileMetadata":{"ios":{"bundle":"bundles/ios-123.js","assets":[{"path":"assets/4f1c","ext":"png"}]},"web":{"bundle":"x.js","assets":[]}}}"#;
        let metadata = ExportMetadata::parse(json).unwrap();
        assert_eq!(metadata.platforms.len(), 1);
        let ios = metadata.platform(Platform::Ios).unwrap();
        assert_eq!(ios.bundle.as_str(), "bundles/ios-123.js");
        assert_eq!(ios.files().count(), 2);
        assert!(metadata.platform(Platform::Android).is_err());
    }

    #[test]
    fn malformed_metadata_names_the_problem() {
        let err = ExportMetadata::parse(b"{\"version\":0}").unwrap_err();
        assert!(
            err.to_string().contains("metadata.json is not valid"),
            "{err}"
        );
        let err = ExportMetadata::parse(
            br#"{"version":0,"bundler":"metro","fileMetadata":{"ios":{"bundle":"../../x.js"}}}"#,
        )
        .unwrap_err();
        assert_eq!(
            err,
            Error::UnsafePath {
                path: "../../x.js".into()
            }
        );
    }

    #[test]
    fn describe_checks_files_against_metadata() {
        let json = br#"{"version":0,"bundler":"metro","fileMetadata":{"ios":{"bundle":"b.js","assets":[{"path":"assets/900150983cd24fb0d6963f7d28e17f72","ext":"png"}]}}}"#;
        let metadata = ExportMetadata::parse(json).unwrap();
        let ios = metadata.platform(Platform::Ios).unwrap();
        let described = DescribedPlatform::describe(Platform::Ios, ios, |path| {
            Some(if path.as_str() == "b.js" {
                b"bundle".to_vec()
            } else {
                b"abc".to_vec()
            })
        })
        .unwrap();
        assert_eq!(described.files().count(), 2);
        assert_eq!(
            described.launch_asset.description.content_type,
            "application/javascript"
        );

        let changed = DescribedPlatform::describe(Platform::Ios, ios, |_| Some(b"other".to_vec()))
            .unwrap_err();
        assert!(
            changed.to_string().contains("does not match metadata.json"),
            "{changed}"
        );
        let missing = DescribedPlatform::describe(Platform::Ios, ios, |_| None).unwrap_err();
        assert!(missing.to_string().contains("missing"), "{missing}");
    }
}
