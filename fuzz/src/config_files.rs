//! The files of an Expo project a deploy reads: `.env*`, `metadata.json`, app config and
//! `eas.json`.

use std::collections::{BTreeMap, BTreeSet};

use otago_core::{
    EasJson, EnvOptions, EnvSource, ExportMetadata, HostOs, Platform, ResolvedEnv, RuntimeVersion,
    Workflow, check_app_config, expo_config, merge_eas_env, parse_app_config, parse_env_file,
    resolve_env, resolve_runtime_version, runtime_version_policy,
};

/// The `.env*` files of the `production` mode, lowest priority last.
const ENV_FILES: [&str; 4] = [
    ".env.production.local",
    ".env.local",
    ".env.production",
    ".env",
];

/// `parse_env_file` and `resolve_env` over up to four `.env*` files, the input split at NUL
/// bytes: neither panics, a file's keys are unique with lines inside the file, process
/// variables always win and every variable a file set comes from a file that was read.
pub fn env_files(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut files = BTreeMap::new();
    for (name, contents) in ENV_FILES.iter().zip(text.split('\0')) {
        let assignments = parse_env_file(contents);
        let keys: BTreeSet<&str> = assignments.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys.len(), assignments.len(), "a key is listed twice");
        let lines = contents.split('\n').count();
        assert!(assignments.iter().all(|a| (1..=lines).contains(&a.line)));
        files.insert((*name).to_owned(), contents.to_owned());
    }
    let process: BTreeMap<String, String> =
        [("HOME", "/home/expo"), ("EXPO_PUBLIC_FROM_PROCESS", "p")]
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect();
    for host_os in [HostOs::Linux, HostOs::Windows] {
        let Ok(resolved) = resolve_env(
            &EnvOptions::new(Some("production"), host_os),
            &process,
            &files,
        ) else {
            continue;
        };
        for (key, value) in &process {
            assert_eq!(resolved.get(key), Some(value.as_str()));
            assert_eq!(resolved.source(key), Some(&EnvSource::Process));
        }
        for key in resolved.file_keys() {
            let Some(EnvSource::File(file)) = resolved.source(key) else {
                unreachable!("file_keys lists only variables from files");
            };
            assert!(resolved.files.contains(file), "{file} was not read");
        }
    }
}

/// `ExportMetadata::parse`: it never panics, and what it accepts names a platform and only
/// paths inside the export.
pub fn export_metadata(data: &[u8]) {
    let Ok(metadata) = ExportMetadata::parse(data) else {
        return;
    };
    assert!(!metadata.platforms.is_empty());
    for platform in Platform::ALL {
        let Ok(export) = metadata.platform(platform) else {
            continue;
        };
        for path in export.files() {
            let text = path.as_str();
            let inside = !text.starts_with('/')
                && !text.contains(['\\', '\0', ':'])
                && text
                    .split('/')
                    .all(|segment| !segment.is_empty() && segment != "..");
            assert!(inside, "{text} is outside the export");
            if let Some(ext) = path.extension() {
                assert!(text.ends_with(&format!(".{ext}")));
            }
        }
    }
}

/// The app config and `eas.json` readers over the same text: `parse_app_config`,
/// `check_app_config`, the runtime version (policy and resolution, both workflows) and every
/// `eas.json` build profile. None panics; a policy that is unset never resolves, and checking
/// a config gives the same findings as checking it unwrapped.
pub fn app_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(eas) = EasJson::parse(text) {
        let names: Vec<String> = eas.build_profile_names().map(str::to_owned).collect();
        for name in names {
            let Ok(profile) = eas.build_profile(&name) else {
                continue;
            };
            assert_eq!(profile.chain.first(), Some(&name));
            for platform in [None, Some(Platform::Ios), Some(Platform::Android)] {
                let env = profile.env_for(platform);
                assert!(profile.env.keys().all(|key| env.contains_key(key)));
                let _ = profile.channel_for(platform);
                let merged = merge_eas_env(ResolvedEnv::default(), &profile, platform);
                assert!(env.keys().all(|key| merged.get(key).is_some()));
            }
        }
    }
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return;
    };
    if let Ok(config) = parse_app_config(text) {
        assert_eq!(&config, expo_config(&value));
    }
    for workflow in [Workflow::Managed, Workflow::Bare] {
        let whole = check_app_config(
            &value,
            Some("https://updates.example.com/manifest/p"),
            workflow,
        );
        let unwrapped = check_app_config(
            expo_config(&value),
            Some("https://updates.example.com/manifest/p"),
            workflow,
        );
        assert_eq!(whole.is_ok(), unwrapped.is_ok());
        if let (Ok(whole), Ok(unwrapped)) = (whole, unwrapped) {
            assert_eq!(whole, unwrapped);
        }
        for platform in Platform::ALL {
            let resolved = resolve_runtime_version(&value, platform, workflow);
            match runtime_version_policy(&value, platform) {
                Ok(None) | Err(_) => assert!(resolved.is_err()),
                Ok(Some(_)) => {
                    if let Ok(RuntimeVersion::Resolved(version)) = resolved {
                        assert!(!version.is_empty());
                    }
                }
            }
        }
    }
}
