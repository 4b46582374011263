//! `eas.json` build profiles: `extends`, `env`, `channel`, and how their env ranks below the
//! `.env*` files and the process in a deploy.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;

use otago_core::{
    EasJson, EnvOptions, EnvSource, Error, HostOs, Platform, merge_eas_env, resolve_env,
};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/expo-app");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURE}/{name}")).unwrap()
}

fn eas_reason(result: Result<impl std::fmt::Debug, Error>) -> String {
    match result {
        Err(Error::EasJson { reason }) => reason,
        other => panic!("expected an eas.json error, got {other:?}"),
    }
}

#[test]
fn fixture_production_profile() {
    let eas = EasJson::parse(&fixture("eas.json")).unwrap();
    assert_eq!(
        eas.build_profile_names().collect::<Vec<_>>(),
        ["development", "preview", "production"]
    );
    let production = eas.build_profile("production").unwrap();
    assert_eq!(production.channel.as_deref(), Some("production"));
    assert_eq!(production.chain, ["production"]);
    assert_eq!(
        production.env["OTAGO_UPDATE_URL"],
        "https://updates.example.com"
    );
    assert_eq!(
        production.env["EXPO_PUBLIC_API_URL"],
        "https://api.example.com"
    );
    assert_eq!(
        eas.build_profile("development").unwrap().env,
        BTreeMap::new()
    );
}

#[test]
fn profile_env_ranks_below_env_files_and_process() {
    let eas = EasJson::parse(&fixture("eas.json")).unwrap();
    let profile = eas.build_profile("production").unwrap();
    let mut eas_only = profile.clone();
    eas_only
        .env
        .insert("EAS_ONLY".to_owned(), "from-eas".to_owned());

    let files: BTreeMap<String, String> = [
        ".env",
        ".env.local",
        ".env.production",
        ".env.production.local",
    ]
    .into_iter()
    .map(|name| (name.to_owned(), fixture(name)))
    .collect();
    let process = BTreeMap::from([("OTAGO_CHANNEL".to_owned(), "shell".to_owned())]);
    let env = resolve_env(
        &EnvOptions::new(Some("production"), HostOs::Linux),
        &process,
        &files,
    )
    .unwrap();
    let env = merge_eas_env(env, &eas_only, Some(Platform::Ios));

    // `.env.production` sets both keys the profile sets: the files win.
    assert_eq!(
        env.get("EXPO_PUBLIC_API_URL"),
        Some("https://updates.example.com/api")
    );
    assert_eq!(
        env.get("OTAGO_UPDATE_URL"),
        Some("https://updates.example.com")
    );
    assert_eq!(
        env.source("OTAGO_UPDATE_URL"),
        Some(&EnvSource::File(".env.production".to_owned()))
    );
    assert_eq!(env.get("OTAGO_CHANNEL"), Some("shell"));
    // Keys nobody else sets come from the profile.
    assert_eq!(env.get("EAS_ONLY"), Some("from-eas"));
    assert_eq!(
        env.source("EAS_ONLY"),
        Some(&EnvSource::EasBuildProfile("production".to_owned()))
    );

    // Without any .env file the profile's values show through.
    let bare = resolve_env(
        &EnvOptions::new(Some("production"), HostOs::Linux),
        &process,
        &BTreeMap::new(),
    )
    .unwrap();
    let bare = merge_eas_env(bare, &profile, None);
    assert_eq!(
        bare.get("EXPO_PUBLIC_API_URL"),
        Some("https://api.example.com")
    );
}

#[test]
fn extends_merges_env_and_platform_sections() {
    let eas = EasJson::parse(
        r#"{"build": {
            "base": {"channel": "base", "env": {"A": "base", "B": "base"}, "ios": {"env": {"I": "base-ios"}}},
            "middle": {"extends": "base", "env": {"B": "middle"}, "android": {"channel": "droid"}},
            "top": {"extends": "middle", "env": {"C": "top"}, "ios": {"env": {"J": "top-ios"}, "channel": "ios-top"}}
        }}"#,
    )
    .unwrap();
    let top = eas.build_profile("top").unwrap();
    assert_eq!(top.chain, ["top", "middle", "base"]);
    assert_eq!(top.channel.as_deref(), Some("base"));
    let env: Vec<(&str, &str)> = top
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(env, [("A", "base"), ("B", "middle"), ("C", "top")]);
    let ios = top.env_for(Some(Platform::Ios));
    assert_eq!(
        (ios["I"].as_str(), ios["J"].as_str()),
        ("base-ios", "top-ios")
    );
    assert_eq!(top.channel_for(Some(Platform::Ios)), Some("ios-top"));
    assert_eq!(top.channel_for(Some(Platform::Android)), Some("droid"));
    assert_eq!(top.channel_for(None), Some("base"));
    assert!(!top.env_for(Some(Platform::Android)).contains_key("I"));
}

#[test]
fn extends_cycle_is_an_error() {
    let eas = EasJson::parse(
        r#"{"build": {"a": {"extends": "b"}, "b": {"extends": "c"}, "c": {"extends": "a"}}}"#,
    )
    .unwrap();
    let reason = eas_reason(eas.build_profile("a"));
    assert!(reason.contains("cycle (a → b → c → a)"), "{reason}");
    let itself = EasJson::parse(r#"{"build": {"a": {"extends": "a"}}}"#).unwrap();
    assert!(eas_reason(itself.build_profile("a")).contains("a → a"));
}

#[test]
fn chains_longer_than_eas_allows_are_errors() {
    let eas = EasJson::parse(
        r#"{"build": {"p1": {"extends": "p2"}, "p2": {"extends": "p3"}, "p3": {"extends": "p4"},
            "p4": {"extends": "p5"}, "p5": {"extends": "p6"}, "p6": {}}}"#,
    )
    .unwrap();
    assert!(eas_reason(eas.build_profile("p1")).contains("longer than the 5 profiles"));
    assert_eq!(eas.build_profile("p2").unwrap().chain.len(), 5);
}

#[test]
fn missing_profiles_are_named() {
    let eas = EasJson::parse(&fixture("eas.json")).unwrap();
    let reason = eas_reason(eas.build_profile("staging"));
    assert!(
        reason.contains("no build profile `staging`")
            && reason.contains("development, preview, production"),
        "{reason}"
    );
    let eas = EasJson::parse(r#"{"build": {"child": {"extends": "gone"}}}"#).unwrap();
    let reason = eas_reason(eas.build_profile("child"));
    assert!(
        reason.contains("`child` extends `gone`, which does not exist"),
        "{reason}"
    );
}

#[test]
fn malformed_files_are_errors() {
    assert!(eas_reason(EasJson::parse("{")).contains("not valid JSON"));
    assert!(eas_reason(EasJson::parse("[]")).contains("JSON object"));
    assert!(eas_reason(EasJson::parse(r#"{"build": 1}"#)).contains("`build`"));
    let eas = EasJson::parse(
        r#"{"build": {"p": {"env": {"PORT": 3000}}, "q": {"channel": 1}, "r": {"extends": 2}}}"#,
    )
    .unwrap();
    assert!(eas_reason(eas.build_profile("p")).contains("`build.p.env.PORT` must be a string"));
    assert!(eas_reason(eas.build_profile("q")).contains("`build.q.channel` must be a string"));
    assert!(eas_reason(eas.build_profile("r")).contains("`build.r.extends`"));
    assert!(
        EasJson::parse("{}")
            .unwrap()
            .build_profile("production")
            .is_err()
    );
}
