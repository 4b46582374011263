//! Every route, declared once in tables that both build the routers and list the routes (so a
//! test can hold the OpenAPI document to them).

use axum::Router;
use axum::http::Method;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::ids;
use crate::state::AppState;
use crate::store::ProjectRecord;

pub(crate) mod assets;
pub(crate) mod groups;
pub(crate) mod health;
pub(crate) mod keys;
pub(crate) mod manifest;
pub(crate) mod projects;
pub(crate) mod uploads;

/// Declares a route table: a `const` listing `(method, path)` and a function building the router.
macro_rules! route_table {
    ($(#[$doc:meta])* $routes:ident, $build:ident { $($method:ident $path:literal => $handler:path;)* }) => {
        $(#[$doc])*
        pub(crate) const $routes: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        pub(crate) fn $build() -> Router<AppState> {
            let router = Router::new();
            $(let router = router.route($path, axum::routing::$method($handler));)*
            router
        }
    };
}

route_table! {
    /// The Expo Updates protocol: manifests and assets. (`any` answers every method, so the
    /// manifest endpoint can refuse the others with 405 and the protocol headers.)
    PROTOCOL_ROUTES, protocol_routes {
        any "/manifest/{ref}" => manifest::manifest;
        get "/assets/{hash}" => assets::asset;
    }
}

route_table! {
    /// Public routes that are not the protocol.
    PUBLIC_ROUTES, public_routes {
        get "/healthz" => health::healthz;
        get "/metrics" => health::metrics;
        get "/api/v1/openapi.json" => health::openapi;
    }
}

route_table! {
    /// The management API (bearer-token authenticated).
    API_ROUTES, api_routes {
        post "/api/v1/projects" => projects::create;
        get "/api/v1/projects" => projects::list;
        get "/api/v1/projects/{ref}" => projects::get;
        patch "/api/v1/projects/{ref}" => projects::patch;
        delete "/api/v1/projects/{ref}" => projects::delete;
        post "/api/v1/projects/{ref}/keys" => keys::create;
        get "/api/v1/projects/{ref}/keys" => keys::list;
        delete "/api/v1/projects/{ref}/keys/{id}" => keys::revoke;
        post "/api/v1/projects/{ref}/assets/missing" => uploads::missing;
        put "/api/v1/projects/{ref}/assets/{hash}" => uploads::upload;
        post "/api/v1/projects/{ref}/groups" => groups::publish;
        get "/api/v1/projects/{ref}/groups" => groups::list;
        get "/api/v1/projects/{ref}/groups/{group}" => groups::get;
        patch "/api/v1/projects/{ref}/groups/{group}" => groups::patch;
        post "/api/v1/projects/{ref}/groups/{group}/revert" => groups::revert;
        get "/api/v1/projects/{ref}/release" => groups::release;
        get "/api/v1/projects/{ref}/adoption" => projects::adoption;
    }
}

/// Every route of [`crate::router`] as `(METHOD, path)`, `any` listed as GET.
#[must_use]
pub fn all_routes() -> Vec<(Method, &'static str)> {
    PROTOCOL_ROUTES
        .iter()
        .chain(PUBLIC_ROUTES)
        .chain(API_ROUTES)
        .map(|&(method, path)| {
            let method = if method == "any" { "GET" } else { method };
            (
                Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap_or(Method::GET),
                path,
            )
        })
        .collect()
}

/// The project a request names, after checking the ref's shape and the caller's access.
pub(crate) async fn project_for(
    state: &AppState,
    principal: &Principal,
    project_ref: &str,
) -> ApiResult<ProjectRecord> {
    if !ids::is_project_ref(project_ref) {
        return Err(project_not_found(project_ref));
    }
    principal.require_project(project_ref)?;
    state
        .meta
        .project(project_ref)
        .await?
        .ok_or_else(|| project_not_found(project_ref))
}

pub(crate) fn project_not_found(project_ref: &str) -> ApiError {
    ApiError::not_found(
        "project_not_found",
        format!(
            "there is no project `{}`",
            project_ref
                .chars()
                .take(64)
                .collect::<String>()
                .escape_debug()
        ),
        "list projects with GET /api/v1/projects",
    )
}

/// The answer for unrouted paths.
pub(crate) async fn route_not_found() -> ApiError {
    ApiError::not_found(
        "route_not_found",
        "no such route",
        "see /api/v1/openapi.json for the API's routes",
    )
}

/// The answer for a routed path with another method.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed(crate::error::Problem::new(
        "method_not_allowed",
        "this route does not take that method",
        "see /api/v1/openapi.json for the methods of each route",
    ))
}
