//! Bounds on connections: a cap on how many are served at once, with the longest-idle one
//! closed to make room (so idle or slow-header clients cannot lock others out), a clean 503
//! when every connection has a request in flight, and a write timeout for clients that stop
//! reading.
//!
//! The registry costs the manifest fast path one relaxed store ([`Slot::touch`]); everything
//! else happens when a connection opens or closes.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Sleep;

/// The connection cap when none is configured: half the open-file limit (the other half for
/// asset files being streamed, the database and refused connections), at most this many.
const MAX_DEFAULT_CONNECTIONS: usize = 16_384;
/// The cap when the open-file limit is unknown.
const FALLBACK_CONNECTIONS: usize = 512;

/// The connection cap for an open-file limit.
pub(crate) fn default_cap(open_file_limit: Option<u64>) -> usize {
    open_file_limit.map_or(FALLBACK_CONNECTIONS, |limit| {
        usize::try_from(limit / 2)
            .unwrap_or(usize::MAX)
            .clamp(1, MAX_DEFAULT_CONNECTIONS)
    })
}

/// One served connection, as the registry sees it.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    /// Requests whose response is not fully written yet.
    in_flight: AtomicUsize,
    /// Set by every request, cleared by eviction scans (a second chance, as in CLOCK).
    active: AtomicBool,
    /// Signalled when the registry closes this connection to make room.
    evict: Notify,
}

impl Slot {
    /// Notes that the connection was used just now.
    pub(crate) fn touch(&self) {
        self.active.store(true, Ordering::Relaxed);
    }

    /// Marks a request in flight until the returned guard is dropped.
    pub(crate) fn busy(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(Arc::clone(self))
    }

    /// Completes when the registry closes this connection to make room.
    pub(crate) async fn evicted(&self) {
        self.evict.notified().await;
    }
}

/// A request in flight on a [`Slot`].
#[derive(Debug)]
pub(crate) struct Busy(Arc<Slot>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The connections being served, oldest first.
#[derive(Debug)]
pub(crate) struct Connections {
    cap: usize,
    slots: Mutex<(u64, BTreeMap<u64, Arc<Slot>>)>,
}

/// A connection's place in the registry; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Admitted {
    id: u64,
    slot: Arc<Slot>,
    registry: Arc<Connections>,
}

impl Admitted {
    /// The connection's slot.
    pub(crate) fn slot(&self) -> &Arc<Slot> {
        &self.slot
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.registry.lock().1.remove(&self.id);
    }
}

impl Connections {
    /// A registry serving at most `cap` connections.
    pub(crate) fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap: cap.max(1),
            slots: Mutex::new((0, BTreeMap::new())),
        })
    }

    /// The cap.
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, BTreeMap<u64, Arc<Slot>>)> {
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Admits a new connection; at the cap the longest-idle one (no request in flight, not
    /// used since the last scan, oldest first) is closed to make room. `None` when every
    /// connection has a request in flight.
    pub(crate) fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let mut guard = self.lock();
        let (next_id, slots) = &mut *guard;
        if slots.len() >= self.cap {
            let victim = Self::idlest(slots)?;
            if let Some(slot) = slots.remove(&victim) {
                slot.evict.notify_one();
            }
        }
        let id = *next_id;
        *next_id += 1;
        let slot = Arc::new(Slot::default());
        slots.insert(id, Arc::clone(&slot));
        Some(Admitted {
            id,
            slot,
            registry: Arc::clone(self),
        })
    }

    /// The connection to close: the oldest idle one not used since the previous scan (used
    /// ones lose their mark on the way), else the oldest idle one.
    fn idlest(slots: &BTreeMap<u64, Arc<Slot>>) -> Option<u64> {
        let mut oldest_idle = None;
        for (&id, slot) in slots {
            if slot.in_flight.load(Ordering::Relaxed) > 0 {
                continue;
            }
            if !slot.active.swap(false, Ordering::Relaxed) {
                return Some(id);
            }
            oldest_idle.get_or_insert(id);
        }
        oldest_idle
    }
}

/// What a connection past the cap gets when every connection is busy.
const BUSY_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
cache-control: no-store\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 142\r\n\
\r\n\
{\"error\":{\"code\":\"server_busy\",\"message\":\"every connection of this server is busy\",\"hint\":\"retry after the number of seconds in retry-after\"}}";

/// How long a refused connection is given to take its 503.
const REFUSAL_TIME: Duration = Duration::from_secs(2);

/// Answers a connection past the cap with 503 and closes it (reading what the client sent
/// first, so the close does not reset the answer away).
pub(crate) async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(REFUSAL_TIME, async {
        stream.write_all(BUSY_RESPONSE).await?;
        stream.shutdown().await?;
        let mut sink = [0_u8; 4096];
        let mut drained = 0;
        while drained < 64 * 1024 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<_, io::Error>(())
    })
    .await;
}

/// A response body that keeps its request counted as in flight until it is written.
pub(crate) struct TrackedBody {
    inner: Body,
    _busy: Busy,
}

impl TrackedBody {
    /// Wraps `inner`.
    pub(crate) fn new(inner: Body, busy: Busy) -> Self {
        Self { inner, _busy: busy }
    }
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// A stream whose writes fail with [`io::ErrorKind::TimedOut`] once the peer has not taken
/// any bytes for the write timeout.
pub(crate) struct TimedWrites<S> {
    inner: S,
    timeout: Duration,
    /// Armed while a write waits; reset by progress.
    stalled: Pin<Box<Sleep>>,
    waiting: bool,
}

impl<S> TimedWrites<S> {
    /// Wraps `inner`.
    pub(crate) fn new(inner: S, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            stalled: Box::pin(tokio::time::sleep(timeout)),
            waiting: false,
        }
    }

    /// Passes a write-side poll through, timing how long it stays pending.
    fn timed<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>>
    where
        S: Unpin,
    {
        match poll(Pin::new(&mut self.inner), cx) {
            Poll::Ready(result) => {
                self.waiting = false;
                Poll::Ready(result)
            }
            Poll::Pending => {
                if !self.waiting {
                    self.waiting = true;
                    let deadline = tokio::time::Instant::now() + self.timeout;
                    self.stalled.as_mut().reset(deadline);
                }
                ready!(self.stalled.as_mut().poll(cx));
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client stopped reading the response",
                )))
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TimedWrites<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TimedWrites<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .timed(cx, |inner, cx| inner.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .timed(cx, |inner, cx| inner.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().timed(cx, AsyncWrite::poll_flush)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().timed(cx, AsyncWrite::poll_shutdown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_follows_the_open_file_limit() {
        assert_eq!(default_cap(Some(1024)), 512);
        assert_eq!(default_cap(Some(1 << 30)), MAX_DEFAULT_CONNECTIONS);
        assert_eq!(default_cap(Some(1)), 1);
        assert_eq!(default_cap(None), FALLBACK_CONNECTIONS);
        let body_len = BUSY_RESPONSE.len()
            - (BUSY_RESPONSE
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .unwrap()
                + 4);
        assert_eq!(body_len, 142);
    }

    #[test]
    fn at_the_cap_the_idlest_connection_makes_room_and_busy_ones_stay() {
        let connections = Connections::new(2);
        let first = connections.admit().unwrap();
        let second = connections.admit().unwrap();
        second.slot().touch();
        // The first was never used: it goes.
        let third = connections.admit().unwrap();
        assert_eq!(connections.lock().1.len(), 2);
        assert!(!connections.lock().1.contains_key(&first.id));
        drop(first);
        // Both left are busy: no room.
        let _busy_second = second.slot().busy();
        let _busy_third = third.slot().busy();
        assert!(connections.admit().is_none());
        drop(_busy_third);
        let fourth = connections.admit().unwrap();
        assert!(!connections.lock().1.contains_key(&third.id));
        assert!(connections.lock().1.contains_key(&second.id));
        drop(fourth);
        assert_eq!(connections.lock().1.len(), 1);
    }
}
