//! Configuration: the command line (flags with environment twins) and the checked
//! [`ServerConfig`] the library runs on.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Names of the environment variables the server reads.
#[derive(Debug, Clone, Copy)]
pub struct EnvVars;

impl EnvVars {
    /// Address to listen on (`--listen`).
    pub const OTAGO_LISTEN: &'static str = "OTAGO_LISTEN";
    /// Folder for the database and assets (`--data-dir`).
    pub const OTAGO_DATA_DIR: &'static str = "OTAGO_DATA_DIR";
    /// Base of every URL the server hands out (`--public-url`).
    pub const OTAGO_PUBLIC_URL: &'static str = "OTAGO_PUBLIC_URL";
    /// The admin token (at least 32 characters); without it one is generated at first start.
    pub const OTAGO_ADMIN_TOKEN: &'static str = "OTAGO_ADMIN_TOKEN";
    /// Log filter, e.g. `info` or `otago_server=debug` (tracing-subscriber syntax).
    pub const OTAGO_LOG: &'static str = "OTAGO_LOG";
    /// Memory for serving hot assets, in MiB (`--asset-memory-mb`).
    pub const OTAGO_ASSET_MEMORY_MB: &'static str = "OTAGO_ASSET_MEMORY_MB";
    /// Days adoption counts and runtime version days are kept (`--adoption-retention-days`).
    pub const OTAGO_ADOPTION_RETENTION_DAYS: &'static str = "OTAGO_ADOPTION_RETENTION_DAYS";
    /// Most connections served at once (`--max-connections`).
    pub const OTAGO_MAX_CONNECTIONS: &'static str = "OTAGO_MAX_CONNECTIONS";
    /// Seconds a client may take to send a request head (`--header-read-timeout-secs`).
    pub const OTAGO_HEADER_READ_TIMEOUT_SECS: &'static str = "OTAGO_HEADER_READ_TIMEOUT_SECS";
    /// Seconds a request body may pause between chunks (`--body-timeout-secs`).
    pub const OTAGO_BODY_TIMEOUT_SECS: &'static str = "OTAGO_BODY_TIMEOUT_SECS";
    /// Seconds a response may wait for the client to read (`--write-timeout-secs`).
    pub const OTAGO_WRITE_TIMEOUT_SECS: &'static str = "OTAGO_WRITE_TIMEOUT_SECS";
    /// Earlier updates a launch asset is patched from (`--patch-bases`).
    pub const OTAGO_PATCH_BASES: &'static str = "OTAGO_PATCH_BASES";
    /// The metadata database: `sqlite://PATH` or `postgres://...`.
    pub const OTAGO_DATABASE_URL: &'static str = "OTAGO_DATABASE_URL";
    /// Where asset bytes live: `file://DIR` or `s3://BUCKET/PREFIX?...`.
    pub const OTAGO_STORAGE_URL: &'static str = "OTAGO_STORAGE_URL";
    /// Base of asset URLs in manifests, e.g. a CDN in front of the bucket.
    pub const OTAGO_ASSET_BASE_URL: &'static str = "OTAGO_ASSET_BASE_URL";
}

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";
/// Default data folder.
pub const DEFAULT_DATA_DIR: &str = "./otago-data";
/// Default asset size limit of a new project: 50 MiB.
pub const DEFAULT_MAX_ASSET_BYTES: u64 = 50 * 1024 * 1024;
/// The largest asset size limit a project may set: 2 GiB.
pub const MAX_ASSET_BYTES_CEILING: u64 = 2 * 1024 * 1024 * 1024;
/// Default memory for hot assets: 32 MiB.
pub const DEFAULT_ASSET_MEMORY_MB: u64 = 32;
/// Default retention of adoption counts and runtime version days.
pub const DEFAULT_ADOPTION_RETENTION_DAYS: u32 = 90;
/// Default time to send a request head.
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 10;
/// Default pause allowed between chunks of a request body.
pub const DEFAULT_BODY_TIMEOUT_SECS: u64 = 60;
/// Default pause allowed while the client does not read a response.
pub const DEFAULT_WRITE_TIMEOUT_SECS: u64 = 60;
/// The example app the demo publishes, beside this crate in the repository.
pub const DEFAULT_DEMO_APP_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/expo-app");

/// `otago-server`: the Expo Updates protocol endpoint, asset CDN and management API.
#[derive(Debug, Parser)]
#[command(
    name = "otago-server",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// A maintenance command instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Serving options.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Maintenance commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the store: SQLite integrity, every asset file hashes to its name, every update's
    /// assets exist. Exits non-zero naming each problem.
    Check(CheckArgs),
    /// Move an embedded install (SQLite and its asset folder) to PostgreSQL and, optionally, a
    /// bucket: every row and asset is copied, then read back and compared. Safe to run again:
    /// what is already there is only checked. Run it before the replicas start on the target.
    Migrate(MigrateArgs),
}

/// Options of `otago-server migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The install's data folder (its database and assets, unless given below).
    #[arg(long, env = EnvVars::OTAGO_DATA_DIR, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// The SQLite database to copy (default: `otago.sqlite3` in the data folder).
    #[arg(long, value_parser = DatabaseUrl::parse)]
    pub from: Option<DatabaseUrl>,
    /// The PostgreSQL database to copy into (`postgres://USER@HOST:PORT/DATABASE`).
    #[arg(long, value_parser = DatabaseUrl::parse)]
    pub to: DatabaseUrl,
    /// Where the install's assets are (default: the data folder).
    #[arg(long, value_parser = StorageUrl::parse)]
    pub assets_from: Option<StorageUrl>,
    /// Where to copy the assets (e.g. `s3://BUCKET/PREFIX?endpoint=...`); without it only the
    /// metadata moves and the replicas keep using `--assets-from`.
    #[arg(long, value_parser = StorageUrl::parse)]
    pub assets_to: Option<StorageUrl>,
}

/// Options of `otago-server check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Folder with the database and assets.
    #[arg(long, env = EnvVars::OTAGO_DATA_DIR, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// The metadata database, as the server's `--database-url` (default: SQLite in the data
    /// folder).
    #[arg(long, env = EnvVars::OTAGO_DATABASE_URL, hide_env_values = true, value_parser = DatabaseUrl::parse)]
    pub database_url: Option<DatabaseUrl>,
    /// Where asset bytes live, as the server's `--storage-url` (default: the data folder).
    #[arg(long, env = EnvVars::OTAGO_STORAGE_URL, hide_env_values = true, value_parser = StorageUrl::parse)]
    pub storage_url: Option<StorageUrl>,
}

/// Options of the server.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = EnvVars::OTAGO_LISTEN, default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Folder for the database and assets (created if missing).
    #[arg(long, env = EnvVars::OTAGO_DATA_DIR, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// The metadata database: `sqlite://PATH` (default: `otago.sqlite3` in the data folder,
    /// one server) or `postgres://USER@HOST:PORT/DATABASE` (shared by any number of replicas).
    #[arg(long, env = EnvVars::OTAGO_DATABASE_URL, hide_env_values = true, value_parser = DatabaseUrl::parse)]
    pub database_url: Option<DatabaseUrl>,
    /// Where asset bytes live: `file://DIR` (default: `assets` in the data folder) or
    /// `s3://BUCKET/PREFIX` with settings in the query (`endpoint=https://...` for R2 or
    /// MinIO, `region=...`) or the usual `AWS_*` variables (credentials, region, endpoint).
    #[arg(long, env = EnvVars::OTAGO_STORAGE_URL, hide_env_values = true, value_parser = StorageUrl::parse)]
    pub storage_url: Option<StorageUrl>,
    /// Base of asset URLs in manifests when a CDN or the bucket's public domain serves the
    /// storage's objects (`<base>/<hash>` is the object `<prefix>/<hash>`); default:
    /// `<public-url>/assets`, this server.
    #[arg(long, env = EnvVars::OTAGO_ASSET_BASE_URL)]
    pub asset_base_url: Option<String>,
    /// Base URL devices and deployers reach this server at, e.g. `https://updates.example.com`
    /// (default: `http://<listen>`)
    #[arg(long, env = EnvVars::OTAGO_PUBLIC_URL)]
    pub public_url: Option<String>,
    /// The admin token, at least 32 characters (prefer the environment variable: flags show up
    /// in process lists). Without it a token is generated at first start and printed once.
    /// Setting it replaces the kept token for good: the earlier one stops working, and stays
    /// dead if the variable is unset later (the last token set keeps working then).
    #[arg(long, env = EnvVars::OTAGO_ADMIN_TOKEN, hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Publish the example app as project `example`/`production` if needed and print a curl
    /// command that fetches its manifest.
    #[arg(long)]
    pub demo: bool,
    /// The example app the demo publishes (an `expo export` in `dist/` or `exports/v1/`, keys in
    /// `keys/`).
    #[arg(long, default_value = DEFAULT_DEMO_APP_DIR)]
    pub demo_app_dir: PathBuf,
    /// Log filter (tracing-subscriber syntax).
    #[arg(long, env = EnvVars::OTAGO_LOG, default_value = "info")]
    pub log: String,
    /// Memory (MiB) for keeping the most requested assets, e.g. the newest launch bundles, to
    /// send them without reading the disk; an asset larger than a quarter of it is always
    /// streamed from disk. 0 turns this off.
    #[arg(long, env = EnvVars::OTAGO_ASSET_MEMORY_MB, default_value_t = DEFAULT_ASSET_MEMORY_MB, value_parser = clap::value_parser!(u64).range(0..=1 << 20))]
    pub asset_memory_mb: u64,
    /// Bundle patches: how many earlier updates of a channel each launch asset is patched from
    /// (and to, for reverts), besides every registered embedded bundle; 0 turns patches off.
    #[arg(long, env = EnvVars::OTAGO_PATCH_BASES, default_value_t = otago_core::DEFAULT_PATCH_BASES as u8, value_parser = clap::value_parser!(u8).range(0..=16))]
    pub patch_bases: u8,
    /// Days adoption counts and the runtime versions devices ask for are kept; older ones are
    /// deleted at the next flush.
    #[arg(long, env = EnvVars::OTAGO_ADOPTION_RETENTION_DAYS, default_value_t = DEFAULT_ADOPTION_RETENTION_DAYS, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub adoption_retention_days: u32,
    /// Most connections served at once (default: half the open-file limit, at most 16384).
    /// Past it the longest-idle connection is closed to make room; when every connection has
    /// a request in flight, new ones get 503 with `retry-after`.
    #[arg(long, env = EnvVars::OTAGO_MAX_CONNECTIONS, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub max_connections: Option<u64>,
    /// Seconds a client may take to send a request head (slower ones are disconnected).
    #[arg(long, env = EnvVars::OTAGO_HEADER_READ_TIMEOUT_SECS, default_value_t = DEFAULT_HEADER_READ_TIMEOUT_SECS, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_read_timeout_secs: u64,
    /// Seconds a request body (an upload) may pause between chunks.
    #[arg(long, env = EnvVars::OTAGO_BODY_TIMEOUT_SECS, default_value_t = DEFAULT_BODY_TIMEOUT_SECS, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_timeout_secs: u64,
    /// Seconds a response (e.g. an asset) may wait for the client to read more.
    #[arg(long, env = EnvVars::OTAGO_WRITE_TIMEOUT_SECS, default_value_t = DEFAULT_WRITE_TIMEOUT_SECS, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub write_timeout_secs: u64,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

/// Where the metadata lives.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// An SQLite file (one server).
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (any number of replicas).
    Postgres(String),
}

impl DatabaseUrl {
    /// Reads `sqlite://PATH` or `postgres://...` (also `postgresql://...`).
    ///
    /// # Errors
    /// When the URL has another scheme or no path.
    pub fn parse(url: &str) -> Result<Self, ConfigError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(ConfigError(
                    "database URL `sqlite://` names no file; pass e.g. sqlite:///var/lib/otago/otago.sqlite3".to_owned(),
                ));
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        let scheme = url.split_once("://").map_or(url, |(scheme, _)| scheme);
        Err(ConfigError(format!(
            "database URL scheme `{}` is not supported; use sqlite://PATH or postgres://USER@HOST:PORT/DATABASE",
            scheme.escape_debug()
        )))
    }
}

impl fmt::Debug for DatabaseUrl {
    /// Without the password a PostgreSQL URL may hold.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            Self::Postgres(url) => {
                let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
                let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
                write!(f, "{scheme}://…@{host}")
            }
        }
    }
}

/// Where asset bytes live.
#[derive(Clone, PartialEq, Eq)]
pub enum StorageUrl {
    /// A local folder (one server, or replicas that share a mounted folder).
    Folder(PathBuf),
    /// An S3-compatible bucket (AWS S3, Cloudflare R2, MinIO; any number of replicas).
    S3(S3Location),
}

/// A bucket, a key prefix and the S3 settings given in the storage URL's query.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Location {
    /// The bucket's name.
    pub bucket: String,
    /// Key prefix without a slash at either end; empty for the bucket's root.
    pub prefix: String,
    /// Settings from the query (`endpoint`, `region`, `access_key_id`, `secret_access_key`,
    /// `allow_http`, ... as `object_store` names them); they win over the `AWS_*` variables.
    pub options: Vec<(String, String)>,
}

impl StorageUrl {
    /// Reads `file://DIR` or `s3://BUCKET/PREFIX?endpoint=...&region=...`.
    ///
    /// # Errors
    /// When the URL has another scheme, names no folder or bucket, or sets an unknown option.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        if let Some(dir) = text.strip_prefix("file://") {
            if dir.is_empty() {
                return Err(ConfigError(
                    "storage URL `file://` names no folder; pass e.g. file:///var/lib/otago/assets-root".to_owned(),
                ));
            }
            return Ok(Self::Folder(PathBuf::from(dir)));
        }
        if !text.starts_with("s3://") {
            let scheme = text.split_once("://").map_or(text, |(scheme, _)| scheme);
            return Err(ConfigError(format!(
                "storage URL scheme `{}` is not supported; use file://DIR or s3://BUCKET/PREFIX",
                scheme.escape_debug()
            )));
        }
        let bad = |why: String| ConfigError(format!("storage URL `{}`: {why}", redacted_s3(text)));
        let url = url::Url::parse(text).map_err(|err| bad(err.to_string()))?;
        let bucket = url.host_str().unwrap_or_default().to_owned();
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !bucket_ok {
            return Err(bad(format!(
                "`{}` is not a bucket name (3 to 63 of a-z, 0-9, `.` and `-`)",
                bucket.escape_debug()
            )));
        }
        // The prefix as written: the URL parser would resolve `..` and `.` segments away.
        let written = text["s3://".len()..]
            .split(['?', '#'])
            .next()
            .unwrap_or_default();
        let prefix = written
            .split_once('/')
            .map_or("", |(_, path)| path)
            .trim_matches('/')
            .to_owned();
        let prefix_ok = prefix.is_empty()
            || prefix.split('/').all(|part| {
                !part.is_empty()
                    && part != "."
                    && part != ".."
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            });
        if !prefix_ok {
            return Err(bad(format!(
                "prefix `{}` must be segments of letters, digits, `-`, `_` and `.`",
                prefix.escape_debug()
            )));
        }
        let mut options = Vec::new();
        for (key, value) in url.query_pairs() {
            key.parse::<object_store::aws::AmazonS3ConfigKey>()
                .map_err(|_| bad(format!("`{}` is not an S3 setting (e.g. endpoint, region, access_key_id, secret_access_key, allow_http)", key.escape_debug())))?;
            options.push((key.into_owned(), value.into_owned()));
        }
        Ok(Self::S3(S3Location {
            bucket,
            prefix,
            options,
        }))
    }
}

/// Whether a storage URL option holds a secret (not printed).
fn is_secret_option(key: &str) -> bool {
    ["secret", "token", "password"]
        .iter()
        .any(|word| key.contains(word))
}

/// An `s3://` URL as text with the values of secret options replaced.
fn redacted_s3(text: &str) -> String {
    let Some((base, query)) = text.split_once('?') else {
        return text.to_owned();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if is_secret_option(key) => format!("{key}=…"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", pairs.join("&"))
}

impl fmt::Debug for StorageUrl {
    /// Without the secrets an S3 URL may hold.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Folder(dir) => write!(f, "file://{}", dir.display()),
            Self::S3(location) => location.fmt(f),
        }
    }
}

impl fmt::Debug for S3Location {
    /// Without the secrets its options may hold.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)?;
        for (index, (key, value)) in self.options.iter().enumerate() {
            let separator = if index == 0 { '?' } else { '&' };
            let value = if is_secret_option(key) { "…" } else { value };
            write!(f, "{separator}{key}={value}")?;
        }
        Ok(())
    }
}

/// What the library needs to run, checked.
#[derive(Clone)]
pub struct ServerConfig {
    /// Folder for the database and assets.
    pub data_dir: PathBuf,
    /// The metadata database; `None`: SQLite in the data folder.
    pub database_url: Option<DatabaseUrl>,
    /// Where asset bytes live; `None`: the `assets` folder in the data folder.
    pub storage_url: Option<StorageUrl>,
    /// Base of asset URLs in manifests when assets are served from elsewhere (a CDN, a
    /// bucket's public domain); `None`: `{public_url}/assets`, this server.
    pub asset_base_url: Option<String>,
    /// Base of every URL handed out, without a trailing slash.
    pub public_url: String,
    /// The admin token (at least 32 characters); `None` to use (or generate) the one kept in
    /// the store. A configured token replaces the kept one for good (see
    /// [`crate::AppState::with_stores`]).
    pub admin_token: Option<String>,
    /// Asset size limit of new projects.
    pub default_max_asset_bytes: u64,
    /// How often adoption counts and key uses are written to the store.
    pub flush_interval: Duration,
    /// At most this many distinct adoption counters (and as many runtime version days) are
    /// held between flushes: by default under 10 MiB of counters and 52 MiB of days (at most
    /// 66 days a project, so far less in practice; the adoption module bounds every entry).
    pub adoption_capacity: usize,
    /// How long in-flight requests may take to finish after shutdown begins.
    pub shutdown_grace: Duration,
    /// Highest Brotli quality used when compressing assets (11, the best, by default; lower
    /// is faster).
    pub brotli_max_quality: u32,
    /// Bytes of memory for the most requested assets (0: always read them from the store).
    pub asset_memory_bytes: u64,
    /// Earlier updates each launch asset is patched from; 0: no patches.
    pub patch_bases: usize,
    /// A patch is kept only at most this many hundredths of its target's size.
    pub patch_max_percent: u8,
    /// Launch assets larger than this are not diffed (bounds the differ's memory: about
    /// ten times the base's size).
    pub patch_max_bundle_bytes: u64,
    /// How often rollouts are judged by their health gates and ramps take their steps.
    pub release_tick: Duration,
    /// How long a replica's claim on a background job lasts (a dead replica's job waits this
    /// long for another).
    pub job_lease: Duration,
    /// How often a replica on a shared store looks for background work left over.
    pub job_sweep_interval: Duration,
    /// Failed authentications a client address may have at once before it gets 429.
    pub auth_failure_burst: u32,
    /// How fast that budget refills: one failure per this long.
    pub auth_failure_interval: Duration,
    /// Days adoption counts and runtime version days are kept.
    pub adoption_retention_days: u32,
    /// Most connections served at once; `None`: half the open-file limit, at most 16384.
    pub max_connections: Option<usize>,
    /// Time a client may take to send a request head.
    pub header_read_timeout: Duration,
    /// Pause allowed between chunks of a request body.
    pub body_timeout: Duration,
    /// Pause allowed while a client does not read its response.
    pub write_timeout: Duration,
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("data_dir", &self.data_dir)
            .field("database_url", &self.database_url)
            .field("storage_url", &self.storage_url)
            .field("asset_base_url", &self.asset_base_url)
            .field("public_url", &self.public_url)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<set>"))
            .field("default_max_asset_bytes", &self.default_max_asset_bytes)
            .field("flush_interval", &self.flush_interval)
            .field("adoption_capacity", &self.adoption_capacity)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("brotli_max_quality", &self.brotli_max_quality)
            .field("asset_memory_bytes", &self.asset_memory_bytes)
            .field("patch_bases", &self.patch_bases)
            .field("patch_max_percent", &self.patch_max_percent)
            .field("patch_max_bundle_bytes", &self.patch_max_bundle_bytes)
            .field("release_tick", &self.release_tick)
            .field("job_lease", &self.job_lease)
            .field("job_sweep_interval", &self.job_sweep_interval)
            .field("auth_failure_burst", &self.auth_failure_burst)
            .field("auth_failure_interval", &self.auth_failure_interval)
            .field("adoption_retention_days", &self.adoption_retention_days)
            .field("max_connections", &self.max_connections)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("body_timeout", &self.body_timeout)
            .field("write_timeout", &self.write_timeout)
            .finish()
    }
}

impl ServerConfig {
    /// A configuration with defaults for everything but the data folder and public URL.
    ///
    /// # Errors
    /// When `public_url` is not an absolute http(s) URL without query or fragment.
    pub fn new(data_dir: impl Into<PathBuf>, public_url: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            data_dir: data_dir.into(),
            database_url: None,
            storage_url: None,
            asset_base_url: None,
            public_url: normalize_public_url(public_url)?,
            admin_token: None,
            default_max_asset_bytes: DEFAULT_MAX_ASSET_BYTES,
            flush_interval: Duration::from_secs(10),
            adoption_capacity: 20_000,
            shutdown_grace: Duration::from_secs(30),
            brotli_max_quality: 11,
            asset_memory_bytes: DEFAULT_ASSET_MEMORY_MB * 1024 * 1024,
            patch_bases: otago_core::DEFAULT_PATCH_BASES,
            patch_max_percent: otago_core::DEFAULT_MAX_PATCH_PERCENT,
            patch_max_bundle_bytes: 64 * 1024 * 1024,
            release_tick: Duration::from_millis(250),
            job_lease: Duration::from_secs(600),
            job_sweep_interval: Duration::from_secs(30),
            auth_failure_burst: 20,
            auth_failure_interval: Duration::from_secs(3),
            adoption_retention_days: DEFAULT_ADOPTION_RETENTION_DAYS,
            max_connections: None,
            header_read_timeout: Duration::from_secs(DEFAULT_HEADER_READ_TIMEOUT_SECS),
            body_timeout: Duration::from_secs(DEFAULT_BODY_TIMEOUT_SECS),
            write_timeout: Duration::from_secs(DEFAULT_WRITE_TIMEOUT_SECS),
        })
    }

    /// Sets the admin token.
    #[must_use]
    pub fn with_admin_token(mut self, token: Option<String>) -> Self {
        self.admin_token = token.filter(|t| !t.is_empty());
        self
    }

    /// The URL of a project's manifest endpoint (its `updates.url`).
    #[must_use]
    pub fn update_url(&self, project_ref: &str) -> String {
        format!("{}/manifest/{project_ref}", self.public_url)
    }

    /// The base URL of asset URLs in manifests: the configured one, or this server's
    /// `/assets`.
    #[must_use]
    pub fn asset_base_url(&self) -> String {
        self.asset_base_url
            .clone()
            .unwrap_or_else(|| format!("{}/assets", self.public_url))
    }

    /// Serves manifests whose asset URLs start with `url` (a CDN or a bucket's public
    /// domain that serves the storage's objects by hash).
    ///
    /// # Errors
    /// When `url` is not an absolute http(s) URL without query or fragment.
    pub fn with_asset_base_url(mut self, url: &str) -> Result<Self, ConfigError> {
        self.asset_base_url = Some(normalize_public_url(url)?);
        Ok(self)
    }
}

/// Checks a public URL and drops a trailing slash.
fn normalize_public_url(url: &str) -> Result<String, ConfigError> {
    let trimmed = url.trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"));
    let ok = rest.is_some_and(|rest| {
        !rest.is_empty()
            && !rest.starts_with('/')
            && !rest.contains(['?', '#', ' ', '\t', '\\'])
            && !rest.contains(char::is_control)
    });
    if !ok {
        return Err(ConfigError(format!(
            "public URL `{}` is not an absolute http(s) URL without query; pass e.g. --public-url https://updates.example.com",
            url.escape_debug()
        )));
    }
    Ok(trimmed.to_owned())
}

/// The default public URL for a listen address: `http://<addr>`, with a wildcard address
/// replaced by loopback.
#[must_use]
pub fn default_public_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls_are_checked_and_normalized() {
        let config = ServerConfig::new("/tmp/x", "https://updates.example.com/otago/").unwrap();
        assert_eq!(config.public_url, "https://updates.example.com/otago");
        assert_eq!(
            config.update_url("p_0123456789"),
            "https://updates.example.com/otago/manifest/p_0123456789"
        );
        assert_eq!(
            config.asset_base_url(),
            "https://updates.example.com/otago/assets"
        );
        for bad in [
            "updates.example.com",
            "ftp://x",
            "http://",
            "http://x/?a=b",
            "/relative",
        ] {
            assert!(ServerConfig::new("/tmp/x", bad).is_err(), "{bad}");
        }
        assert_eq!(
            default_public_url("0.0.0.0:3000".parse().unwrap()),
            "http://127.0.0.1:3000"
        );
        assert!(
            !format!("{:?}", config.with_admin_token(Some("secret".into()))).contains("secret")
        );
    }

    #[test]
    fn database_urls_are_read_and_printed_without_passwords() {
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/otago/db.sqlite3").unwrap(),
            DatabaseUrl::Sqlite(PathBuf::from("/var/lib/otago/db.sqlite3"))
        );
        let postgres =
            DatabaseUrl::parse("postgres://otago:hunter2@db.internal:5432/otago").unwrap();
        assert_eq!(
            format!("{postgres:?}"),
            "postgres://…@db.internal:5432/otago"
        );
        assert!(DatabaseUrl::parse("postgresql://db/otago").is_ok());
        for bad in ["sqlite://", "mysql://db/otago", "otago.sqlite3"] {
            let err = DatabaseUrl::parse(bad).unwrap_err().to_string();
            assert!(err.contains("sqlite://"), "{bad}: {err}");
        }
    }

    #[test]
    fn storage_urls_are_read_and_printed_without_secrets() {
        assert_eq!(
            StorageUrl::parse("file:///var/lib/otago").unwrap(),
            StorageUrl::Folder(PathBuf::from("/var/lib/otago"))
        );
        let url = "s3://otago-assets/prod/v1?endpoint=http://127.0.0.1:9000&secret_access_key=hunter2&region=auto";
        let StorageUrl::S3(location) = StorageUrl::parse(url).unwrap() else {
            panic!("an s3 URL");
        };
        assert_eq!(location.bucket, "otago-assets");
        assert_eq!(location.prefix, "prod/v1");
        assert_eq!(
            location.options[0],
            ("endpoint".into(), "http://127.0.0.1:9000".into())
        );
        let printed = format!("{location:?}");
        assert!(
            !printed.contains("hunter2") && printed.contains("region=auto"),
            "{printed}"
        );
        assert_eq!(
            StorageUrl::parse("s3://otago-assets").unwrap(),
            StorageUrl::S3(S3Location {
                bucket: "otago-assets".into(),
                prefix: String::new(),
                options: Vec::new(),
            })
        );
        for (bad, says) in [
            ("gs://bucket/x", "file://DIR or s3://BUCKET/PREFIX"),
            ("file://", "names no folder"),
            ("s3://Bad_Bucket/x", "is not a bucket name"),
            ("s3://bucket/a/../b", "prefix"),
            ("s3://bucket/x?colour=blue", "`colour` is not an S3 setting"),
        ] {
            let err = StorageUrl::parse(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
        let err = StorageUrl::parse("s3://Bad?secret_access_key=hunter2").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn cli_parses() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["otago-server", "check", "--data-dir", "/d"]).unwrap();
        assert!(
            matches!(cli.command, Some(Command::Check(CheckArgs { ref data_dir, .. })) if data_dir == &PathBuf::from("/d"))
        );
    }
}
