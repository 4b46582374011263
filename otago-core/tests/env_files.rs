//! `.env*` resolution against the example app and against tables recorded from `@expo/env`
//! 2.6.0 (the version Expo SDK 56 ships) running on Node 20.20.2.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;

use otago_core::{
    EnvOptions, EnvSource, Error, HostOs, ResolvedEnv, env_file_names, parse_boolish,
    parse_env_file, resolve_env,
};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/expo-app");

/// The fixture's four `.env*` files, by name.
fn fixture_files() -> BTreeMap<String, String> {
    [
        ".env",
        ".env.local",
        ".env.production",
        ".env.production.local",
    ]
    .into_iter()
    .map(|name| {
        (
            name.to_owned(),
            std::fs::read_to_string(format!("{FIXTURE}/{name}")).unwrap(),
        )
    })
    .collect()
}

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

fn production() -> EnvOptions {
    EnvOptions::new(Some("production"), HostOs::Linux)
}

fn resolve(
    options: &EnvOptions,
    process: &[(&str, &str)],
    files: &BTreeMap<String, String>,
) -> ResolvedEnv {
    resolve_env(options, &vars(process), files).unwrap()
}

fn file(name: &str) -> EnvSource {
    EnvSource::File(name.to_owned())
}

#[test]
fn file_names_follow_expo_order() {
    assert_eq!(
        env_file_names(Some("production")),
        [
            ".env.production.local",
            ".env.local",
            ".env.production",
            ".env"
        ]
    );
    assert_eq!(
        env_file_names(Some("test")),
        [".env.test.local", ".env.test", ".env"]
    );
    assert_eq!(env_file_names(None), [".env.local", ".env"]);
    assert_eq!(env_file_names(Some("")), [".env.local", ".env"]);
    let mut off = production();
    off.load_files = false;
    assert!(off.file_names().is_empty());
}

#[test]
fn fixture_in_production_mode() {
    let env = resolve(&production(), &[], &fixture_files());
    assert_eq!(
        env.files,
        [
            ".env.production.local",
            ".env.local",
            ".env.production",
            ".env"
        ]
    );
    let expected = [
        ("OTAGO_CHANNEL", "production-local", ".env.production.local"),
        ("EXPO_PUBLIC_FEATURE_FLAG", "local", ".env.local"),
        (
            "EXPO_PUBLIC_API_URL",
            "https://updates.example.com/api",
            ".env.production",
        ),
        ("SHARED_SECRET", "from-dotenv-local", ".env.local"),
        // `.env` says `${OTAGO_UPDATE_URL}/api/manifest`; expansion runs over the merged files,
        // so it sees the value from `.env.production`.
        (
            "EXPANDED_URL",
            "https://updates.example.com/api/manifest",
            ".env",
        ),
        (
            "QUOTED",
            "value with spaces # not a comment",
            ".env.production.local",
        ),
        (
            "OTAGO_UPDATE_URL",
            "https://updates.example.com",
            ".env.production",
        ),
        ("BASE_ONLY", "base-only-value", ".env"),
        ("LOCAL_ONLY", "local-only-value", ".env.local"),
        ("PROD_ONLY", "prod-only-value", ".env.production"),
        (
            "PROD_LOCAL_ONLY",
            "prod-local-only-value",
            ".env.production.local",
        ),
    ];
    for (key, value, source) in expected {
        assert_eq!(env.get(key), Some(value), "{key}");
        assert_eq!(env.source(key), Some(&file(source)), "{key}");
    }
    assert_eq!(env.vars.len(), expected.len());
    assert_eq!(env.file_keys().count(), expected.len());
}

#[test]
fn process_variable_beats_every_file() {
    let process = [
        ("OTAGO_CHANNEL", "from-shell"),
        ("OTAGO_UPDATE_URL", "https://shell.example"),
        ("PATH", "/bin"),
    ];
    let env = resolve(&production(), &process, &fixture_files());
    assert_eq!(env.get("OTAGO_CHANNEL"), Some("from-shell"));
    assert_eq!(env.source("OTAGO_CHANNEL"), Some(&EnvSource::Process));
    assert_eq!(env.get("PATH"), Some("/bin"));
    // References see the process value too.
    assert_eq!(
        env.get("EXPANDED_URL"),
        Some("https://shell.example/api/manifest")
    );
    // An empty process variable still wins.
    let env = resolve(&production(), &[("SHARED_SECRET", "")], &fixture_files());
    assert_eq!(env.get("SHARED_SECRET"), Some(""));
}

#[test]
fn test_mode_skips_env_local() {
    let options = EnvOptions::new(Some("test"), HostOs::Linux);
    assert!(!options.file_names().contains(&".env.local".to_owned()));
    let env = resolve(&options, &[], &fixture_files());
    assert_eq!(env.files, [".env"]);
    assert_eq!(env.get("SHARED_SECRET"), Some("from-dotenv"));
    assert_eq!(env.get("EXPO_PUBLIC_FEATURE_FLAG"), Some("base"));
    assert_eq!(env.get("LOCAL_ONLY"), None);
    assert_eq!(
        env.get("EXPANDED_URL"),
        Some("http://localhost:3000/api/manifest")
    );
}

#[test]
fn switching_files_off_keeps_only_process_variables() {
    let mut options = production();
    options.load_files = false;
    let env = resolve(&options, &[("A", "1")], &fixture_files());
    assert!(env.files.is_empty());
    assert_eq!(env.to_map(), vars(&[("A", "1")]));
    assert_eq!(parse_boolish("TRUE"), Some(true));
    assert_eq!(parse_boolish("0"), Some(false));
    assert_eq!(parse_boolish("yes"), None);
}

#[test]
fn files_of_other_modes_are_ignored() {
    let mut files = fixture_files();
    files.insert(".env.development".to_owned(), "DEV_ONLY=1".to_owned());
    let env = resolve(&production(), &[], &files);
    assert_eq!(env.get("DEV_ONLY"), None);
}

#[test]
fn parses_like_expo() {
    for (contents, expected) in PARSED {
        let parsed: Vec<(String, String)> = parse_env_file(contents)
            .into_iter()
            .map(|assignment| (assignment.key, assignment.value))
            .collect();
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        assert_eq!(parsed, expected, "{contents:?}");
    }
}

#[test]
fn reports_the_line_of_each_assignment() {
    let lines: Vec<(String, usize)> = parse_env_file("# c\nA=1\r\n\nB=\"x\ny\"\nC=3")
        .into_iter()
        .map(|a| (a.key, a.line))
        .collect();
    assert_eq!(
        lines,
        [
            ("A".to_owned(), 2),
            ("B".to_owned(), 4),
            ("C".to_owned(), 6)
        ]
    );
}

#[test]
fn resolves_like_expo() {
    for (name, mode, files, process, expected, expected_files) in RESOLVED {
        let options = EnvOptions::new(*mode, HostOs::Linux);
        let env = resolve(&options, process, &vars(files));
        assert_eq!(env.to_map(), vars(expected), "{name}");
        assert_eq!(env.files, *expected_files, "{name}");
    }
}

#[test]
fn refuses_dangerous_keys() {
    let files = vars(&[(".env", "A=1\nNODE_OPTIONS=--require ./evil.js\npath=/x")]);
    let err = resolve_env(&production(), &BTreeMap::new(), &files).unwrap_err();
    let Error::EnvFile { file, line, reason } = &err else {
        panic!("{err:?}")
    };
    assert_eq!((file.as_str(), *line), (".env", 2));
    assert!(
        reason.contains("NODE_OPTIONS") && reason.contains("path (.env:3)"),
        "{reason}"
    );
    assert!(reason.contains("EXPO_UNSAFE_DOTENV_KEYS"), "{reason}");

    // Opting in through the process environment lets it load.
    let process = vars(&[("EXPO_UNSAFE_DOTENV_KEYS", "node_options,PATH")]);
    let env = resolve_env(&production(), &process, &files).unwrap();
    assert_eq!(env.get("NODE_OPTIONS"), Some("--require ./evil.js"));
}

#[test]
fn loader_variables_are_refused_per_host() {
    let files = vars(&[(".env", "LD_PRELOAD_EXTRA=1\nDYLD_EXTRA=2")]);
    let linux = resolve_env(&production(), &BTreeMap::new(), &files).unwrap_err();
    assert!(linux.to_string().contains("LD_PRELOAD_EXTRA"), "{linux}");
    let mac = resolve_env(
        &EnvOptions::new(Some("production"), HostOs::MacOs),
        &BTreeMap::new(),
        &files,
    );
    assert!(mac.unwrap_err().to_string().contains("DYLD_EXTRA"));
    let other = resolve_env(
        &EnvOptions::new(Some("production"), HostOs::Other),
        &BTreeMap::new(),
        &files,
    );
    assert_eq!(other.unwrap().get("DYLD_EXTRA"), Some("2"));
    assert_eq!(HostOs::from_rust_os("macos"), HostOs::MacOs);
}

#[test]
fn machine_keys_only_from_local_files() {
    let files = vars(&[(".env.production", "ANDROID_HOME=/sdk")]);
    let err = resolve_env(&production(), &BTreeMap::new(), &files).unwrap_err();
    assert!(
        matches!(&err, Error::EnvFile { file, line: 1, reason } if file == ".env.production" && reason.contains(".env.local")),
        "{err}"
    );
    let files = vars(&[(".env.production.local", "ANDROID_HOME=/sdk")]);
    assert_eq!(
        resolve(&production(), &[], &files).get("ANDROID_HOME"),
        Some("/sdk")
    );
}

#[test]
fn reference_cycles_are_errors() {
    let files = vars(&[(".env", "# cycle\nA=$B\nB=${A}")]);
    let err = resolve_env(&production(), &BTreeMap::new(), &files).unwrap_err();
    assert!(
        matches!(&err, Error::EnvFile { file, line: 2, reason } if file == ".env" && reason.contains("cycle")),
        "{err}"
    );
}

#[test]
fn runaway_expansion_is_an_error() {
    let mut contents = String::from("V0=xxxxxxxxxxxxxxxx\n");
    for level in 1..40 {
        contents.push_str(&format!("V{level}=$V{prev}$V{prev}\n", prev = level - 1));
    }
    let err = resolve_env(
        &production(),
        &BTreeMap::new(),
        &vars(&[(".env", &contents)]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("MiB"), "{err}");
}

#[test]
fn windows_names_ignore_case() {
    let options = EnvOptions::new(Some("production"), HostOs::Windows);
    let env = resolve(&options, &[("Shared_Secret", "shell")], &fixture_files());
    assert_eq!(env.get("SHARED_SECRET"), None);
    assert_eq!(env.get("Shared_Secret"), Some("shell"));
}

/// (file contents, assignments in the order Expo sees them) from `@expo/env` 2.6.0 on Node 20.20.2.
const PARSED: &[(&str, &[(&str, &str)])] = &[
    ("A=1\nB=2", &[("A", "1"), ("B", "2")]),
    ("export A=1\nexport   B=2", &[("B", "2"), ("A", "1")]),
    (" A = spaced value ", &[("A", "spaced value")]),
    ("A=\"hello # x\"", &[("A", "hello # x")]),
    ("A=hello # x", &[("A", "hello")]),
    ("A=hello#x", &[("A", "hello")]),
    ("A='single # q'", &[("A", "single # q")]),
    ("A=`bt # q`", &[("A", "bt # q")]),
    ("A=\"multi\nline\"", &[("A", "multi\nline")]),
    ("A=\"esc\\nnl\"", &[("A", "esc\nnl")]),
    ("A='esc\\nnl'", &[("A", "esc\\nnl")]),
    (
        "A=\"unterminated\nB=2",
        &[("A", "\"unterminated"), ("B", "2")],
    ),
    ("A=\tTab\t", &[("A", "\tTab\t")]),
    ("A=\"a\" junk", &[("A", "a")]),
    (
        "#comment\nA=1 # c\n  # indented\nB=2",
        &[("# indented\nB", "2"), ("A", "1")],
    ),
    ("A=1\r\nB=2\rC=3", &[("A", "1"), ("B", "2C=3")]),
    ("A=", &[("A", "")]),
    ("A", &[]),
    ("=x\nB=1", &[]),
    ("A B=1", &[("A B", "1")]),
    ("A: 1", &[]),
    ("A==x", &[("A", "=x")]),
    ("A=\"x\\\"y\"", &[("A", "x\\")]),
    (
        "Z=1\nA=2\n10=3\n2=4\n007=5",
        &[
            ("2", "4"),
            ("10", "3"),
            ("007", "5"),
            ("A", "2"),
            ("Z", "1"),
        ],
    ),
    ("A=1\nA=2", &[("A", "2")]),
    ("\tA=1", &[("A", "1")]),
    ("A=1\n#X=2", &[("#X", "2"), ("A", "1")]),
    ("A=1\n#X=2\n", &[("A", "1")]),
    ("B=1\n=x\nC=2", &[("B", "1")]),
    ("A=\"x=y", &[("\"x", "y")]),
    ("\n\n  \nA=1", &[("A", "1")]),
    ("A=1\n   \nB=2", &[("B", "2"), ("A", "1")]),
    ("A=${B:-x}", &[("A", "${B:-x}")]),
    ("\u{feff}A=1", &[("A", "1")]),
    ("A=1\n\tA=2", &[("A", "1")]),
    (
        "QUOTED=\"value with spaces # not a comment\"",
        &[("QUOTED", "value with spaces # not a comment")],
    ),
    ("A=\"a\\\\nb\"", &[("A", "a\\\nb")]),
    ("A='x\ny' tail\nB=2", &[("A", "x\ny"), ("B", "2")]),
    ("A=\u{e9}=\u{fc} # ok", &[("A", "\u{e9}=\u{fc}")]),
];

/// (name, mode, files, process variables, expected variables, expected files) from `@expo/env` 2.6.0.
#[allow(clippy::type_complexity)]
const RESOLVED: &[(
    &str,
    Option<&str>,
    &[(&str, &str)],
    &[(&str, &str)],
    &[(&str, &str)],
    &[&str],
)] = &[
    (
        "expansion_sees_higher_priority_value",
        Some("production"),
        &[
            (".env", "URL=${HOST}/api\nHOST=http://base"),
            (".env.production", "HOST=https://prod"),
        ],
        &[],
        &[("HOST", "https://prod"), ("URL", "https://prod/api")],
        &[".env.production", ".env"],
    ),
    (
        "forward_reference_in_same_file",
        Some("production"),
        &[(".env", "A=$Z\nZ=zed")],
        &[],
        &[("A", "zed"), ("Z", "zed")],
        &[".env"],
    ),
    (
        "default_values",
        Some("production"),
        &[(
            ".env",
            "A=${MISSING:-fallback}\nB=${MISSING-other}\nC=${EMPTY:-x}\nEMPTY=\nD=$MISSING-tail rest",
        )],
        &[],
        &[
            ("A", "fallback"),
            ("B", "other"),
            ("C", "x"),
            ("D", "tail rest"),
            ("EMPTY", ""),
        ],
        &[".env"],
    ),
    (
        "escaped_dollar",
        Some("production"),
        &[(".env", "A=\\$B\nB=b\nC=\\${B}\nD=\"price: \\$5\"")],
        &[],
        &[("A", "$B"), ("B", "b"), ("C", "${B}"), ("D", "price: $5")],
        &[".env"],
    ),
    (
        "process_value_used_in_expansion",
        Some("production"),
        &[(".env", "A=${P}\nP=file")],
        &[("P", "proc")],
        &[("A", "proc"), ("P", "proc")],
        &[".env"],
    ),
    (
        "process_value_expanded",
        Some("production"),
        &[(".env", "A=$P")],
        &[("P", "$Q"), ("Q", "qq")],
        &[("A", "qq"), ("P", "$Q"), ("Q", "qq")],
        &[".env"],
    ),
    (
        "process_wins_raw_value_kept",
        Some("production"),
        &[(".env", "P=x$A\nA=a")],
        &[("P", "proc")],
        &[("A", "a"), ("P", "proc")],
        &[".env"],
    ),
    (
        "self_reference_is_empty",
        Some("production"),
        &[(".env", "A=x$A")],
        &[],
        &[("A", "x")],
        &[".env"],
    ),
    (
        "nested_defaults",
        Some("production"),
        &[(
            ".env",
            "A=${B:-${C:-${D}}}\nD=d\nE=${B:-pre${C}post}\nF=$B-x${D}y}z",
        )],
        &[],
        &[
            ("A", "d"),
            ("D", "d"),
            ("E", "pre${C}post"),
            ("F", "x${D}yz"),
        ],
        &[".env"],
    ),
    (
        "unbalanced_braces",
        Some("production"),
        &[(".env", "A=${B\nB=b\nC=$B}\nD=${B:x}\nE=${B-}")],
        &[],
        &[
            ("A", "b"),
            ("B", "b"),
            ("C", "b"),
            ("D", "b:x}"),
            ("E", "b-}"),
        ],
        &[".env"],
    ),
    (
        "escape_then_reference",
        Some("production"),
        &[(".env", "B=\\$C\nA=$B\nC=c")],
        &[],
        &[("A", "$C"), ("B", "$C"), ("C", "c")],
        &[".env"],
    ),
    (
        "numeric_keys_first",
        Some("production"),
        &[(".env", "A=$10\n10=ten\nB=${2}\n2=two")],
        &[],
        &[("10", "ten"), ("2", "two"), ("A", "ten"), ("B", "two")],
        &[".env"],
    ),
    (
        "quotes_and_comments",
        Some("production"),
        &[(
            ".env",
            "S='single $B'\nD=\"double $B\"\nB=b\nU=unquoted $B # comment\nH=a#b",
        )],
        &[],
        &[
            ("B", "b"),
            ("D", "double b"),
            ("H", "a"),
            ("S", "single b"),
            ("U", "unquoted b"),
        ],
        &[".env"],
    ),
    (
        "empty_values_kept",
        Some("production"),
        &[(".env", "A=\nB=\"\"\nC=${A}")],
        &[],
        &[("A", ""), ("B", ""), ("C", "")],
        &[".env"],
    ),
    (
        "mode_test_skips_env_local",
        Some("test"),
        &[
            (".env", "A=base"),
            (".env.local", "A=local"),
            (".env.test", "B=test"),
            (".env.test.local", "C=testlocal"),
        ],
        &[],
        &[("A", "base"), ("B", "test"), ("C", "testlocal")],
        &[".env.test.local", ".env.test", ".env"],
    ),
    (
        "no_mode_reads_local_and_base",
        None,
        &[
            (".env", "A=base"),
            (".env.local", "A=local"),
            (".env.production", "A=prod"),
        ],
        &[],
        &[("A", "local")],
        &[".env.local", ".env"],
    ),
    (
        "babel_env_ignored",
        Some("production"),
        &[(".env", "BABEL_ENV=x\nbabel_env=y\nA=1")],
        &[],
        &[("A", "1")],
        &[".env"],
    ),
    (
        "local_only_key_in_local_file",
        Some("production"),
        &[(".env.local", "ANDROID_HOME=/sdk")],
        &[],
        &[("ANDROID_HOME", "/sdk")],
        &[".env.local"],
    ),
    (
        "crlf_and_export",
        Some("production"),
        &[(".env", "export A=1\r\nB=\"two\"\r\n")],
        &[],
        &[("A", "1"), ("B", "two")],
        &[".env"],
    ),
    (
        "multiline_double_quoted",
        Some("production"),
        &[(
            ".env",
            "KEY=\"-----BEGIN-----\nabc\n-----END-----\"\nNEXT=n\nESC=\"a\\nb\"",
        )],
        &[],
        &[
            ("ESC", "a\nb"),
            ("KEY", "-----BEGIN-----\nabc\n-----END-----"),
            ("NEXT", "n"),
        ],
        &[".env"],
    ),
    (
        "cross_file_default",
        Some("development"),
        &[(".env", "A=${B:-base}"), (".env.development", "B=dev")],
        &[],
        &[("A", "dev"), ("B", "dev")],
        &[".env.development", ".env"],
    ),
    (
        "process_empty_string_wins",
        Some("production"),
        &[(".env", "A=file\nB=$A")],
        &[("A", "")],
        &[("A", ""), ("B", "file")],
        &[".env"],
    ),
];
