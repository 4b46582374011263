//! The service every connection runs. Manifest requests, the hot path, are answered right here
//! from memory: no router, no middleware stack, no timer, no clone of the state. Everything
//! else goes through the axum [`Router`] with its middleware.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse as _, Response};
use futures_util::future::Either;
use hyper::body::Incoming;
use tower::ServiceExt as _;
use tower_http::timeout::TimeoutBody;

use crate::connections::{Slot, TrackedBody};
use crate::metrics::RouteIndex;
use crate::routes::manifest;
use crate::state::AppState;

/// The prefix of the manifest endpoint, `/manifest/{ref}`.
const MANIFEST_PREFIX: &str = "/manifest/";

/// Manifest requests answered in place, the rest handed to the router.
#[derive(Clone)]
pub(crate) struct Dispatch {
    state: AppState,
    router: Router,
    manifest_route: RouteIndex,
    /// The connection's peer, handed to the router as `ConnectInfo` (authentication throttles
    /// by it).
    peer: Option<SocketAddr>,
    body_timeout: Duration,
    /// The connection served, for the connection cap's bookkeeping.
    connection: Option<Arc<Slot>>,
}

/// What the router answers: boxed, off the fast path.
type RouterFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl Dispatch {
    /// A dispatcher in front of `router` (which must serve the same `state`).
    pub(crate) fn new(state: AppState, router: Router) -> Self {
        let manifest_route = state.metrics.route(Some("/manifest/{ref}"));
        let body_timeout = state.config.body_timeout;
        Self {
            state,
            router,
            manifest_route,
            peer: None,
            body_timeout,
            connection: None,
        }
    }

    /// The dispatcher of one connection from `peer`, which notes its requests in `slot` (for
    /// the connection cap).
    pub(crate) fn for_connection(&self, peer: SocketAddr, slot: Arc<Slot>) -> Self {
        Self {
            peer: Some(peer),
            connection: Some(slot),
            ..self.clone()
        }
    }

    fn manifest(&self, project_ref: &str, request: &Request<Incoming>) -> Response {
        let response = match crate::limits::check_headers(request.headers()) {
            Ok(()) => manifest::respond(
                &self.state,
                project_ref,
                request.method(),
                request.headers(),
            ),
            Err(too_large) => too_large.into_response(),
        };
        let status = response.status().as_u16();
        self.state.metrics.request(self.manifest_route, status);
        tracing::debug!(project = project_ref, status, "manifest request");
        response
    }
}

/// The project ref of a manifest URL the router would match the same way: one non-empty path
/// segment with nothing percent-encoded (the router decodes those; leave them to it).
fn manifest_ref(path: &str) -> Option<&str> {
    path.strip_prefix(MANIFEST_PREFIX)
        .filter(|segment| !segment.is_empty() && !segment.contains(['/', '%']))
}

impl hyper::service::Service<Request<Incoming>> for Dispatch {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, RouterFuture>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        if let Some(project_ref) = manifest_ref(request.uri().path()) {
            if let Some(slot) = &self.connection {
                slot.touch();
            }
            return Either::Left(ready(Ok(self.manifest(project_ref, &request))));
        }
        // Uploads may pause between chunks at most `body_timeout`; the request counts as in
        // flight (not to be closed for room) until its response is written.
        let timeout = self.body_timeout;
        let mut request = request.map(|body| Body::new(TimeoutBody::new(timeout, body)));
        if let Some(peer) = self.peer {
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        let busy = self.connection.as_ref().map(Slot::busy);
        let answer = self.router.clone().oneshot(request);
        Either::Right(Box::pin(async move {
            let response = answer.await?;
            Ok(match busy {
                Some(busy) => response.map(|body| Body::new(TrackedBody::new(body, busy))),
                None => response,
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::manifest_ref;

    #[test]
    fn only_plain_single_segments_take_the_fast_path() {
        assert_eq!(manifest_ref("/manifest/p_abc"), Some("p_abc"));
        assert_eq!(manifest_ref("/manifest/"), None);
        assert_eq!(manifest_ref("/manifest/p_abc/"), None);
        assert_eq!(manifest_ref("/manifest/a/b"), None);
        assert_eq!(manifest_ref("/manifest/p%5Fabc"), None);
        assert_eq!(manifest_ref("/manifests/p_abc"), None);
        assert_eq!(manifest_ref("/api/v1/projects"), None);
    }
}
