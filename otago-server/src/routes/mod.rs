//! Every route, declared once in tables that both build the routers and list the routes with
//! who may call them (so a test can hold the OpenAPI document and the access rules to them).
//! A route is declared with its [`Access`]; the router puts [`auth::gate`] in front of every
//! route that is not public, so a handler never runs for a caller the table does not let in.

use axum::Router;
use axum::http::Method;

use crate::auth::{self, Access, Principal};
use crate::error::{ApiError, ApiResult};
use crate::ids;
use crate::state::AppState;
use crate::store::KeyRole::{Admin, Deploy};
use crate::store::ProjectRecord;

pub(crate) mod assets;
pub(crate) mod audit;
pub(crate) mod embedded;
pub(crate) mod fleet;
pub(crate) mod groups;
pub(crate) mod health;
pub(crate) mod keys;
pub(crate) mod manifest;
pub(crate) mod projects;
pub(crate) mod uploads;

/// Declares a route table: a `const` listing `(method, path, access)` and a function building
/// the router, each route behind the check of its access.
macro_rules! route_table {
    ($(#[$doc:meta])* $routes:ident, $build:ident { $($method:ident $path:literal => $handler:path, $access:expr;)* }) => {
        $(#[$doc])*
        pub(crate) const $routes: &[(&str, &str, Access)] = &[$((stringify!($method), $path, $access)),*];

        pub(crate) fn $build(state: &AppState) -> Router<AppState> {
            let router = Router::new();
            $(let router = router.route($path, gated(state, $access, axum::routing::$method($handler)));)*
            router
        }
    };
}

/// `route` behind the check of `access` (nothing in front of a public route).
fn gated(
    state: &AppState,
    access: Access,
    route: axum::routing::MethodRouter<AppState>,
) -> axum::routing::MethodRouter<AppState> {
    if access == Access::Public {
        return route;
    }
    route.layer(axum::middleware::from_fn_with_state(
        auth::Gate::new(state, access),
        auth::gate,
    ))
}

route_table! {
    /// The Expo Updates protocol: manifests and assets. (`any` answers every method, so the
    /// manifest endpoint can refuse the others with 405 and the protocol headers.)
    PROTOCOL_ROUTES, protocol_routes {
        any "/manifest/{ref}" => manifest::manifest, Access::Public;
        get "/assets/{hash}" => assets::asset, Access::Public;
    }
}

route_table! {
    /// Public routes that are not the protocol.
    PUBLIC_ROUTES, public_routes {
        get "/healthz" => health::healthz, Access::Public;
        get "/metrics" => health::metrics, Access::Public;
        get "/api/v1/openapi.json" => health::openapi, Access::Public;
    }
}

route_table! {
    /// The management API (bearer-token authenticated). Settings, keys and the audit log need
    /// an admin key of the project; creating and deleting projects the server's admin token.
    API_ROUTES, api_routes {
        post "/api/v1/projects" => projects::create, Access::ServerAdmin;
        get "/api/v1/projects" => projects::list, Access::AnyCredential;
        get "/api/v1/projects/{ref}" => projects::get, Access::Project(Deploy);
        patch "/api/v1/projects/{ref}" => projects::patch, Access::Project(Admin);
        delete "/api/v1/projects/{ref}" => projects::delete, Access::ServerAdmin;
        get "/api/v1/projects/{ref}/audit" => audit::list, Access::Project(Admin);
        post "/api/v1/projects/{ref}/keys" => keys::create, Access::Project(Admin);
        get "/api/v1/projects/{ref}/keys" => keys::list, Access::Project(Admin);
        delete "/api/v1/projects/{ref}/keys/{id}" => keys::revoke, Access::Project(Admin);
        post "/api/v1/projects/{ref}/assets/missing" => uploads::missing, Access::Project(Deploy);
        put "/api/v1/projects/{ref}/assets/{hash}" => uploads::upload, Access::Project(Deploy);
        post "/api/v1/projects/{ref}/groups" => groups::publish, Access::Project(Deploy);
        get "/api/v1/projects/{ref}/groups" => groups::list, Access::Project(Deploy);
        get "/api/v1/projects/{ref}/groups/{group}" => groups::get, Access::Project(Deploy);
        patch "/api/v1/projects/{ref}/groups/{group}" => groups::patch, Access::Project(Deploy);
        post "/api/v1/projects/{ref}/groups/{group}/revert" => groups::revert, Access::Project(Deploy);
        get "/api/v1/projects/{ref}/release" => groups::release, Access::Project(Deploy);
        get "/api/v1/projects/{ref}/adoption" => fleet::adoption, Access::Project(Deploy);
        get "/api/v1/projects/{ref}/runtime-versions" => fleet::runtime_versions, Access::Project(Deploy);
        post "/api/v1/projects/{ref}/embedded" => embedded::register, Access::Project(Deploy);
        get "/api/v1/projects/{ref}/embedded" => embedded::list, Access::Project(Deploy);
    }
}

/// Every route of [`crate::router`] as `(METHOD, path)`, `any` listed as GET.
#[must_use]
pub fn all_routes() -> Vec<(Method, &'static str)> {
    route_access()
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect()
}

/// Every route of [`crate::router`] as `(METHOD, path, who may call it)`, `any` listed as GET:
/// the table the router is built from.
#[must_use]
pub fn route_access() -> Vec<(Method, &'static str, Access)> {
    PROTOCOL_ROUTES
        .iter()
        .chain(PUBLIC_ROUTES)
        .chain(API_ROUTES)
        .map(|&(method, path, access)| {
            let method = if method == "any" { "GET" } else { method };
            (
                Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap_or(Method::GET),
                path,
                access,
            )
        })
        .collect()
}

/// The project a request names, after checking the ref's shape. The route's gate already
/// decided the caller's access; the project is checked once more here as a second line.
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
