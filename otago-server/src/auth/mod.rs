//! Who may call what in the management API.
//!
//! Every route declares its [`Access`] in the route table (`routes/mod.rs`), which is what the
//! router is built from: [`layer`] puts the check in front of each handler, so a handler runs
//! only for a caller the table lets in, and a route cannot exist without a decision.
//!
//! Callers are the server's admin token (everything) or an API key of one project, whose
//! [`KeyRole`] says what it may do there. Secrets are compared as SHA-256 digests: the admin
//! digest in constant time, keys by the digest. A token that cannot be a key is refused
//! without asking the store; keys the store confirmed are cached in memory ([`cache`]); and
//! each client address has a budget of failed attempts ([`throttle`]), past which it gets 429.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams, Request};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use otago_core::Timestamp;

use crate::error::{ApiError, ApiResult, Problem};
use crate::ids;
use crate::state::AppState;
use crate::store::KeyRole;

pub(crate) mod cache;
pub(crate) mod throttle;

/// How the admin token is named in the audit log.
pub(crate) const ADMIN_ACTOR: &str = "admin";

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, no token (the protocol, assets, health, metrics, the OpenAPI document).
    Public,
    /// Any valid token; the answer shows only what the caller may read.
    AnyCredential,
    /// A key of the `{ref}` project with at least this role, or the admin token.
    Project(KeyRole),
    /// The server's admin token only.
    ServerAdmin,
}

impl Access {
    /// The name the OpenAPI document gives it (`x-otago-access`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::AnyCredential => "any_credential",
            Self::Project(KeyRole::Deploy) => "project_deploy",
            Self::Project(KeyRole::Admin) => "project_admin",
            Self::ServerAdmin => "server_admin",
        }
    }
}

/// Authentication counters, for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct AuthCounters {
    /// Key lookups that reached the store (a cache miss of a token shaped like a key).
    store_lookups: AtomicU64,
    /// Failed authentications (401).
    failures: AtomicU64,
    /// Requests refused because their address failed too often (429).
    throttled: AtomicU64,
}

impl AuthCounters {
    /// Appends the counters in the Prometheus text format.
    pub(crate) fn render(&self, out: &mut String) {
        for (name, help, counter) in [
            (
                "otago_auth_store_lookups_total",
                "API key lookups that reached the store (tokens shaped like a key, not cached).",
                &self.store_lookups,
            ),
            (
                "otago_auth_failures_total",
                "Failed authentications (401).",
                &self.failures,
            ),
            (
                "otago_auth_throttled_total",
                "Requests refused with 429 after too many failed authentications from their address.",
                &self.throttled,
            ),
        ] {
            let n = counter.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {n}"
            );
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Principal {
    /// The admin token.
    Admin,
    /// An API key of one project.
    Key {
        /// The key's id.
        key_id: String,
        /// Its project.
        project_ref: String,
        /// What it may do there.
        role: KeyRole,
    },
}

fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Unauthorized(Problem::new(
        code,
        message,
        "send `Authorization: Bearer <token>` with the admin token or an API key of the project",
    ))
}

fn forbidden(code: &'static str, message: &str, hint: &str) -> ApiError {
    ApiError::Forbidden(Problem::new(code, message, hint))
}

impl Principal {
    /// The audit log's name for the caller: the key id, or `admin`.
    pub(crate) fn actor(&self) -> &str {
        match self {
            Self::Admin => ADMIN_ACTOR,
            Self::Key { key_id, .. } => key_id,
        }
    }

    /// Refuses keys of other projects (403). Checked before the project is looked up, so a
    /// key learns nothing about other projects.
    pub(crate) fn require_project(&self, project_ref: &str) -> ApiResult<()> {
        match self {
            Self::Key {
                project_ref: own, ..
            } if own != project_ref => Err(forbidden(
                "wrong_project",
                "this API key belongs to another project",
                "use a key of this project, or the admin token",
            )),
            _ => Ok(()),
        }
    }

    /// Whether the caller may use a route of `access` on `project_ref` (the route's `{ref}`).
    fn authorize(&self, access: Access, project_ref: Option<&str>) -> ApiResult<()> {
        match (access, self) {
            (Access::Public | Access::AnyCredential, _) | (_, Self::Admin) => Ok(()),
            (Access::ServerAdmin, Self::Key { .. }) => Err(forbidden(
                "admin_only",
                "only the server's admin token may do this",
                "use the admin token (OTAGO_ADMIN_TOKEN, or the one printed at the server's first start)",
            )),
            (Access::Project(needed), Self::Key { role, .. }) => {
                let project_ref = project_ref.ok_or_else(|| {
                    ApiError::internal("a project route without a {ref} path parameter")
                })?;
                self.require_project(project_ref)?;
                if *role < needed {
                    return Err(forbidden(
                        "admin_key_required",
                        "this needs an admin key of the project; this key is a deploy key",
                        "use an admin key (`otago keys create --role admin`, made with the admin token or another admin key) or the admin token",
                    ));
                }
                Ok(())
            }
        }
    }
}

/// What the check in front of a handler needs: the state and the route's [`Access`].
#[derive(Clone)]
pub(crate) struct Gate {
    state: AppState,
    access: Access,
}

impl Gate {
    pub(crate) fn new(state: &AppState, access: Access) -> Self {
        Self {
            state: state.clone(),
            access,
        }
    }
}

/// The check in front of a handler (the route table layers it on every non-public route):
/// authenticates the caller, decides by the route's [`Access`], and hands the [`Principal`]
/// to the handler.
pub(crate) async fn gate(
    axum::extract::State(gate): axum::extract::State<Gate>,
    request: Request,
    next: Next,
) -> Response {
    let Gate { state, access } = gate;
    let (mut parts, body) = request.into_parts();
    let decided = async {
        let principal = authenticate(&state, &parts.headers, client_ip(&parts)).await?;
        let params = RawPathParams::from_request_parts(&mut parts, &state)
            .await
            .map_err(ApiError::internal)?;
        let project_ref = params
            .iter()
            .find_map(|(name, value)| (name == "ref").then_some(value));
        principal.authorize(access, project_ref)?;
        Ok::<_, ApiError>(principal)
    };
    match decided.await {
        Ok(principal) => {
            parts.extensions.insert(principal);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(err) => err.into_response(),
    }
}

/// The peer address the connection came from (unspecified when the router is not served by
/// [`crate::serve`] and no `ConnectInfo` was set).
fn client_ip(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip())
}

fn throttled(wait: std::time::Duration) -> ApiError {
    let seconds = u64::try_from(wait.as_millis().div_ceil(1000))
        .unwrap_or(u64::MAX)
        .max(1);
    ApiError::TooManyRequests(
        Problem::new(
            "too_many_failed_authentications",
            "too many failed authentications from this address",
            format!("wait {seconds} s, then retry with a valid token"),
        ),
        seconds,
    )
}

/// The bearer token of a request, if it has the shape of one.
fn bearer(headers: &HeaderMap) -> ApiResult<&str> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(unauthorized("missing_token", "no Authorization header"));
    };
    value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= ids::MAX_TOKEN_LEN)
        .ok_or_else(|| {
            unauthorized(
                "invalid_token",
                "the Authorization header is not `Bearer <token>`",
            )
        })
}

/// Who sent `headers`, or why they are refused (the failure is counted against `client`).
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    client: IpAddr,
) -> Result<Principal, ApiError> {
    let client = throttle::client_key(client);
    let now = state.now();
    if let Some(wait) = state.auth_throttle.check(client, now.unix_millis()) {
        state
            .auth_counters
            .throttled
            .fetch_add(1, Ordering::Relaxed);
        return Err(throttled(wait));
    }
    let outcome = match bearer(headers) {
        // No header at all is a misconfigured client, not a guess: not counted.
        Err(err) if headers.get(AUTHORIZATION).is_none() => return Err(err),
        Err(err) => Err(err),
        Ok(token) => verify(state, token, now).await,
    };
    if let Err(ApiError::Unauthorized(problem)) = &outcome {
        state.auth_counters.failures.fetch_add(1, Ordering::Relaxed);
        state.auth_throttle.failed(client, now.unix_millis());
        state
            .auth_throttle
            .warn(client, problem.code, now.unix_millis());
    }
    outcome
}

async fn verify(state: &AppState, token: &str, now: Timestamp) -> ApiResult<Principal> {
    let digest = ids::sha256(token.as_bytes());
    if ids::digest_eq(&digest, &state.admin_token_hash) {
        return Ok(Principal::Admin);
    }
    if !ids::is_key_secret(token) {
        return Err(unauthorized("invalid_token", "the token is not valid"));
    }
    let key = match state.keys.get(&digest) {
        Some(key) => key,
        None => {
            let generation = state.keys.generation();
            state
                .auth_counters
                .store_lookups
                .fetch_add(1, Ordering::Relaxed);
            let Some(record) = state.meta.key_by_secret_hash(digest).await? else {
                return Err(unauthorized("invalid_token", "the token is not valid"));
            };
            if let Some(at) = record.revoked_at {
                return Err(unauthorized(
                    "key_revoked",
                    format!("this API key ({}) was revoked at {at}", record.id),
                ));
            }
            let key = cache::CachedKey::from(&record);
            state.keys.insert(digest, key.clone(), generation);
            key
        }
    };
    if let Some(at) = key.expires_at
        && at <= now
    {
        state.keys.remove_key(&key.key_id);
        return Err(ApiError::Unauthorized(Problem::new(
            "key_expired",
            format!("this API key ({}) expired at {at}", key.key_id),
            "create a new key with `otago keys create` (admin token or an admin key of the project)",
        )));
    }
    state.recorder.key_used(&key.key_id, now);
    Ok(Principal::Key {
        key_id: key.key_id,
        project_ref: key.project_ref,
        role: key.role,
    })
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    /// The caller [`layer`] authenticated; a handler behind no layer is refused (500), never
    /// let through.
    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> ApiResult<Self> {
        parts
            .extensions
            .get::<Self>()
            .cloned()
            .ok_or_else(|| ApiError::internal("a handler needing a caller sits behind no gate"))
    }
}
