//! Build profiles of `eas.json`: the `env` and `channel` a deploy can borrow from them.
//!
//! A profile may name a parent with `extends`; it is resolved as `eas-cli` resolves it: the
//! parent's keys first, the child's on top, with `env`, `ios` and `android` merged one level
//! deeper, and at most five profiles in a chain. Per-platform `ios`/`android` sections override
//! the common `env` and `channel` for their platform.
//!
//! **Priority in an Otago deploy.** `eas update` ignores build profile env entirely; on EAS
//! Build the profile env is set on the worker's process, "emulating `.env.production`". Otago
//! puts it *below* everything else: a variable from a build profile is used only when neither
//! the process environment nor any `.env*` file sets it ([`merge_eas_env`]). Its values are
//! taken verbatim (EAS does not expand `$` in them) and `.env` files cannot reference them.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::{EnvSource, EnvVar, Error, Platform, ResolvedEnv, Result};

/// Longest `extends` chain `eas-cli` accepts, counting the requested profile.
const MAX_CHAIN: usize = 5;

/// A parsed `eas.json`; only its `build` profiles are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EasJson {
    build: Map<String, Value>,
}

/// The `env` and `channel` of one platform section (`build.<profile>.ios` / `.android`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EasPlatformOverrides {
    /// Variables that override the profile's `env` on this platform.
    pub env: BTreeMap<String, String>,
    /// A channel that overrides the profile's `channel` on this platform.
    pub channel: Option<String>,
}

/// A build profile with its `extends` chain resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EasBuildProfile {
    /// The profile's name.
    pub name: String,
    /// The profiles merged into it, itself first, then its parent, and so on.
    pub chain: Vec<String>,
    /// `channel`: the update channel builds of this profile request.
    pub channel: Option<String>,
    /// `env`: variables for every platform.
    pub env: BTreeMap<String, String>,
    /// The `ios` section.
    pub ios: EasPlatformOverrides,
    /// The `android` section.
    pub android: EasPlatformOverrides,
}

impl EasBuildProfile {
    /// The variables for a platform (`None`: the common `env` only).
    #[must_use]
    pub fn env_for(&self, platform: Option<Platform>) -> BTreeMap<String, String> {
        let mut env = self.env.clone();
        if let Some(overrides) = platform.map(|platform| self.overrides(platform)) {
            env.extend(
                overrides
                    .env
                    .iter()
                    .map(|(key, value)| (key.clone(), value.clone())),
            );
        }
        env
    }

    /// The channel for a platform (`None`: the common `channel`).
    #[must_use]
    pub fn channel_for(&self, platform: Option<Platform>) -> Option<&str> {
        platform
            .and_then(|platform| self.overrides(platform).channel.as_deref())
            .or(self.channel.as_deref())
    }

    fn overrides(&self, platform: Platform) -> &EasPlatformOverrides {
        match platform {
            Platform::Ios => &self.ios,
            Platform::Android => &self.android,
        }
    }
}

impl EasJson {
    /// Parses the contents of `eas.json`.
    ///
    /// # Errors
    /// [`Error::EasJson`] when it is not a JSON object or `build` is not an object.
    pub fn parse(contents: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(contents).map_err(|err| Error::EasJson {
            reason: format!("not valid JSON ({err}); fix the syntax (comments are not supported)"),
        })?;
        let Value::Object(mut root) = value else {
            return Err(easjson(
                "the file must hold a JSON object like {\"build\": {…}}",
            ));
        };
        let build = match root.remove("build") {
            None => Map::new(),
            Some(Value::Object(build)) => build,
            Some(_) => {
                return Err(easjson(
                    "`build` must be an object that maps profile names to profiles",
                ));
            }
        };
        Ok(Self { build })
    }

    /// The names of the build profiles.
    pub fn build_profile_names(&self) -> impl Iterator<Item = &str> {
        self.build.keys().map(String::as_str)
    }

    /// Resolves build profile `name`, following `extends`.
    ///
    /// # Errors
    /// [`Error::EasJson`] when the profile or a parent is missing, `extends` forms a cycle or a
    /// chain longer than five profiles, or `env`/`channel` do not hold strings.
    pub fn build_profile(&self, name: &str) -> Result<EasBuildProfile> {
        let mut chain = Vec::new();
        let merged = self.resolve(name, &mut chain)?;
        let (ios, android) = (
            overrides(&merged, name, "ios")?,
            overrides(&merged, name, "android")?,
        );
        Ok(EasBuildProfile {
            name: name.to_owned(),
            channel: string_field(&merged, name, "channel")?,
            env: env_field(&merged, name, "env")?,
            ios,
            android,
            chain,
        })
    }

    /// The profile's keys merged over its ancestors'; `chain` collects the names visited.
    fn resolve(&self, name: &str, chain: &mut Vec<String>) -> Result<Map<String, Value>> {
        if let Some(first) = chain.iter().position(|seen| seen == name) {
            let mut cycle = chain[first..].to_vec();
            cycle.push(name.to_owned());
            return Err(easjson(format!(
                "build profiles extend each other in a cycle ({}); remove one of those `extends` keys",
                cycle.join(" → ")
            )));
        }
        chain.push(name.to_owned());
        if chain.len() > MAX_CHAIN {
            return Err(easjson(format!(
                "the `extends` chain {} is longer than the {MAX_CHAIN} profiles EAS allows; \
                 let a profile extend a profile closer to the root",
                chain.join(" → ")
            )));
        }
        let Some(profile) = self.build.get(name) else {
            let known = self.build_profile_names().collect::<Vec<_>>().join(", ");
            let reason = match chain.len() {
                1 => format!(
                    "there is no build profile `{name}` (profiles: {known}); add `build.{name}` or pick one of those"
                ),
                _ => format!(
                    "build profile `{}` extends `{name}`, which does not exist (profiles: {known}); fix its `extends` key",
                    chain[chain.len() - 2]
                ),
            };
            return Err(easjson(reason));
        };
        let Value::Object(profile) = profile else {
            return Err(easjson(format!("build profile `{name}` must be an object")));
        };
        let mut own = profile.clone();
        let parent = match own.remove("extends") {
            None | Some(Value::Null) => None,
            Some(Value::String(parent)) => Some(parent).filter(|parent| !parent.is_empty()),
            Some(_) => {
                return Err(easjson(format!(
                    "`build.{name}.extends` must be the name of another build profile"
                )));
            }
        };
        match parent {
            Some(parent) => Ok(merge_profiles(self.resolve(&parent, chain)?, own)),
            None => Ok(own),
        }
    }
}

/// Adds a build profile's variables under those already resolved, as Otago's deploy does:
/// a key keeps its value when the process or a `.env*` file sets it, and otherwise takes the
/// profile's value with [`EnvSource::EasBuildProfile`] as its source.
#[must_use]
pub fn merge_eas_env(
    mut env: ResolvedEnv,
    profile: &EasBuildProfile,
    platform: Option<Platform>,
) -> ResolvedEnv {
    for (key, value) in profile.env_for(platform) {
        env.vars.entry(key).or_insert_with(|| EnvVar {
            value,
            source: EnvSource::EasBuildProfile(profile.name.clone()),
        });
    }
    env
}

/// `eas-cli`'s `mergeProfiles`: `update` over `base`, one level deeper for `env`, `ios`, `android`.
fn merge_profiles(mut base: Map<String, Value>, update: Map<String, Value>) -> Map<String, Value> {
    for (key, value) in update {
        let merged = match (key.as_str(), base.remove(&key), value) {
            ("env", Some(Value::Object(mut old)), Value::Object(new)) => {
                old.extend(new);
                Value::Object(old)
            }
            ("ios" | "android", Some(Value::Object(old)), Value::Object(new)) => {
                Value::Object(merge_profiles(old, new))
            }
            (_, _, value) => value,
        };
        base.insert(key, merged);
    }
    base
}

fn overrides(
    profile: &Map<String, Value>,
    name: &str,
    platform: &str,
) -> Result<EasPlatformOverrides> {
    let path = format!("{name}.{platform}");
    match profile.get(platform) {
        None | Some(Value::Null) => Ok(EasPlatformOverrides::default()),
        Some(Value::Object(section)) => Ok(EasPlatformOverrides {
            env: env_field(section, &path, "env")?,
            channel: string_field(section, &path, "channel")?,
        }),
        Some(_) => Err(easjson(format!("`build.{path}` must be an object"))),
    }
}

fn string_field(object: &Map<String, Value>, path: &str, field: &str) -> Result<Option<String>> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(value.clone())),
        Some(_) => Err(easjson(format!("`build.{path}.{field}` must be a string"))),
    }
}

fn env_field(
    object: &Map<String, Value>,
    path: &str,
    field: &str,
) -> Result<BTreeMap<String, String>> {
    let vars = match object.get(field) {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(vars)) => vars,
        Some(_) => {
            return Err(easjson(format!(
                "`build.{path}.{field}` must be an object of strings"
            )));
        }
    };
    vars.iter()
        .map(|(key, value)| match value {
            Value::String(value) => Ok((key.clone(), value.clone())),
            other => Err(easjson(format!(
                "`build.{path}.{field}.{key}` must be a string, not {other}; put the value in quotes"
            ))),
        })
        .collect()
}

fn easjson(reason: impl Into<String>) -> Error {
    Error::EasJson {
        reason: reason.into(),
    }
}
