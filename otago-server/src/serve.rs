//! The accept loop: HTTP/1.1 connections with header limits and timeouts, the connection cap
//! ([`crate::connections`]), graceful shutdown, the flusher.

use std::future::Future;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::connections::{Connections, TimedWrites, default_cap, refuse};
use crate::state::AppState;
use crate::store::StoreError;

/// Read buffer of a connection: bounds how much of a request head is buffered (the exact
/// limit on header sizes is [`crate::limits::MAX_HEADER_BYTES`], checked once parsed).
const MAX_BUF_BYTES: usize = 64 * 1024;

pub(crate) async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StoreError> {
    let app = crate::dispatch::Dispatch::new(state.clone(), crate::router(state.clone()));
    let flusher = state.spawn_flusher();
    let ticker = state.spawn_release_ticker();
    let follower = state.spawn_follower();
    let sweeper = state.spawn_job_sweeper();
    let graceful = GracefulShutdown::new();
    let connections = Connections::new(
        state
            .config
            .max_connections
            .unwrap_or_else(|| default_cap(crate::limits::open_file_limit())),
    );
    tracing::debug!(
        max_connections = connections.cap(),
        counter_bytes = state.recorder.max_bytes(),
        "connection cap and most memory of the pending counters"
    );
    let write_timeout = state.config.write_timeout;
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(state.config.header_read_timeout)
        // Request headers stay at hyper's default limit of 100 (more get 431): setting the
        // same limit explicitly makes hyper size its header array at run time, per request.
        .max_buf_size(MAX_BUF_BYTES);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Usually out of file descriptors: back off instead of spinning.
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let Some(admitted) = connections.admit() else {
                    tracing::debug!("every connection is busy; answering 503");
                    tokio::spawn(refuse(stream));
                    continue;
                };
                let slot = std::sync::Arc::clone(admitted.slot());
                let io = TokioIo::new(TimedWrites::new(stream, write_timeout));
                let connection = graceful.watch(builder.serve_connection(io, app.for_connection(peer, std::sync::Arc::clone(&slot))));
                tokio::spawn(async move {
                    let _admitted = admitted;
                    tokio::select! {
                        result = connection => {
                            if let Err(err) = result {
                                tracing::debug!(error = %err, "connection ended with an error");
                            }
                        }
                        () = slot.evicted() => {
                            tracing::debug!("closed the longest-idle connection to make room for a new one");
                        }
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: finishing requests in flight");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(state.config.shutdown_grace) => {
            tracing::warn!("requests still in flight after the grace period; stopping anyway");
        }
    }
    ticker.abort();
    flusher.abort();
    if let Some(sweeper) = sweeper {
        sweeper.abort();
    }
    if let Some(follower) = follower {
        follower.abort();
    }
    state.flush().await
}
