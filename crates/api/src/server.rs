//! bale's own accept loop on hyper: every connection is bounded in time
//! and their number is bounded, so that a hostile or broken client cannot
//! hold the server's sockets, memory or file descriptors.
//!
//! - Headers: a request's headers must be complete within
//!   `header_timeout` of their first byte.
//! - Idle: a connection with no request in flight closes after
//!   `idle_timeout` (HTTP keep-alive).
//! - Progress: a request body that delivers no byte for `body_timeout`
//!   fails (the handler sees an error, so a PUT keeps nothing), and a
//!   client that takes no byte of a response for as long is dropped.
//! - Count: at most `max_connections` at once; one more is answered 503
//!   at once and closed (over TLS closed: a TLS client cannot read a
//!   plain answer).
//! - TLS handshakes: done within 5 s (or `header_timeout`, if less), and
//!   at most 32 at once from one address, so that half-open handshakes
//!   from one client cannot hold every slot.
//!
//! A connection is a byte stream (`AsyncRead + AsyncWrite`): TLS goes in
//! front of [`Watched`] without changing any of this.

use crate::tls::Tls;
use axum::body::Body;
use axum::extract::Request;
use axum::Router;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// Where a request came from, in its extensions: the peer's address (a
/// proxy's, when there is one in front) and whether TLS carried it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
}

/// The bounds of every connection (`[server]` in the configuration).
#[derive(Clone, Debug)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
}

/// What a connection's watchdog knows of it, shared with its byte stream
/// and its requests. Times are milliseconds since the connection was
/// accepted; 0 means "not now".
struct ConnWatch {
    born: Instant,
    in_flight: AtomicUsize,
    /// When the first byte of the next request's headers arrived.
    head_since: AtomicU64,
    /// When the connection last became idle (no request in flight).
    idle_since: AtomicU64,
    /// Since when a write to the client has been waiting.
    write_blocked_since: AtomicU64,
}

impl ConnWatch {
    fn new() -> ConnWatch {
        ConnWatch {
            born: Instant::now(),
            in_flight: AtomicUsize::new(0),
            head_since: AtomicU64::new(0),
            idle_since: AtomicU64::new(1),
            write_blocked_since: AtomicU64::new(0),
        }
    }

    /// Now, at least 1 (0 is "not now").
    fn now(&self) -> u64 {
        (self.born.elapsed().as_millis() as u64).max(1)
    }

    fn on_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 && self.head_since.load(Ordering::Acquire) == 0 {
            self.head_since.store(self.now(), Ordering::Release);
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(0, Ordering::Release);
    }

    fn request_done(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle_since.store(self.now(), Ordering::Release);
        }
    }

    /// Why the connection must be closed now, if it must.
    fn expired(&self, l: &Limits) -> Option<&'static str> {
        let now = self.now();
        let past = |since: u64, limit: Duration| since != 0 && now.saturating_sub(since) > limit.as_millis() as u64;
        if past(self.write_blocked_since.load(Ordering::Acquire), l.body_timeout) {
            return Some("the client took no byte of the response");
        }
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let head = self.head_since.load(Ordering::Acquire);
        if head != 0 {
            return past(head, l.header_timeout).then_some("the request's headers did not arrive in time");
        }
        past(self.idle_since.load(Ordering::Acquire), l.idle_timeout).then_some("idle")
    }
}

/// A connection's byte stream, telling its watchdog when bytes arrive and
/// when writes wait.
pub struct Watched<T> {
    inner: T,
    watch: Arc<ConnWatch>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.watch.on_read();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> Watched<T> {
    fn track<R>(&self, r: &Poll<std::io::Result<R>>) {
        let w = &self.watch.write_blocked_since;
        match r {
            Poll::Pending => {
                if w.load(Ordering::Acquire) == 0 {
                    w.store(self.watch.now(), Ordering::Release);
                }
            }
            Poll::Ready(_) => w.store(0, Ordering::Release),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.track(&r);
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.track(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.track(&r);
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A response body that tells the watchdog when the response is over
/// (sent, or dropped with its connection).
struct Tracked {
    inner: Body,
    watch: Arc<ConnWatch>,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.watch.request_done();
    }
}

/// The longest a TLS handshake may take (or the header timeout, if less):
/// two round trips and a signature take well under a second.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The most TLS handshakes in progress from one address.
const HANDSHAKES_PER_ADDRESS: usize = 32;

/// A handshake in progress from an address, counted while it lives.
struct Pending {
    map: Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl Pending {
    fn enter(map: &Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr) -> Option<Pending> {
        let mut m = map.lock().expect("handshakes");
        let n = m.entry(ip).or_insert(0);
        if *n >= HANDSHAKES_PER_ADDRESS {
            return None;
        }
        *n += 1;
        Some(Pending { map: map.clone(), ip })
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut m = self.map.lock().expect("handshakes");
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// The answer to a connection past `max_connections`.
fn busy() -> Vec<u8> {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "too many connections; retry later",
        "retryable": true,
    })
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 5\r\n\
         Content-Type: application/problem+json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The most connections this process can hold: the configured number, but
/// below the soft limit of open files less what the server needs besides
/// (catalog, cache files, tape files).
pub fn connection_cap(configured: usize) -> usize {
    const RESERVE: u64 = 256;
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    let room = soft.saturating_sub(RESERVE).max(16);
    (configured as u64).min(room) as usize
}

/// Serves `router` on `listener` until `shutdown` completes, then lets the
/// requests in flight finish (idle connections close at once).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    tls: Option<Arc<Tls>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let cap = connection_cap(limits.max_connections);
    if cap < limits.max_connections {
        tracing::warn!(
            "server.max_connections is {}, but the open-file limit leaves room for {cap}: using {cap}",
            limits.max_connections
        );
    }
    let permits = Arc::new(Semaphore::new(cap));
    let handshakes: Arc<std::sync::Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    let tracker = TaskTracker::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    if let Some(t) = &tls {
        tracker.spawn(t.clone().watch(stop_rx.clone()));
    }
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and the like: wait a little rather than spin.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if let Err(e) = tcp.set_nodelay(true) {
            // Without it Nagle holds a response body back until the
            // client's delayed ACK (~40 ms per small GET).
            tracing::warn!("cannot set TCP_NODELAY: {e}");
        }
        match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let (router, limits, stop) = (router.clone(), limits.clone(), stop_rx.clone());
                let handshakes = handshakes.clone();
                let acceptor = tls.as_ref().map(|t| t.acceptor());
                tracker.spawn(async move {
                    let watch = Arc::new(ConnWatch::new());
                    let tcp = Watched {
                        inner: tcp,
                        watch: watch.clone(),
                    };
                    match acceptor {
                        None => {
                            let info = ConnInfo { peer, tls: false };
                            connection(tcp, watch, info, router, limits, stop).await
                        }
                        Some(acceptor) => {
                            // A client may hold only so many handshakes
                            // open at once, each for a few seconds: half-open
                            // handshakes from one address do not take every
                            // connection slot.
                            let Some(_pending) = Pending::enter(&handshakes, peer.ip()) else {
                                metrics::counter!(bale_util::metrics::TLS_FAILED).increment(1);
                                tracing::debug!("{peer}: too many TLS handshakes in progress from its address");
                                drop(permit);
                                return;
                            };
                            let bound = limits.header_timeout.min(HANDSHAKE_TIMEOUT);
                            match tokio::time::timeout(bound, acceptor.accept(tcp)).await {
                                Ok(Ok(stream)) => {
                                    drop(_pending);
                                    let info = ConnInfo { peer, tls: true };
                                    connection(stream, watch, info, router, limits, stop).await
                                }
                                Ok(Err(e)) => {
                                    metrics::counter!(bale_util::metrics::TLS_FAILED).increment(1);
                                    tracing::debug!("TLS handshake with {peer} failed: {e}");
                                }
                                Err(_) => {
                                    metrics::counter!(bale_util::metrics::TLS_FAILED).increment(1);
                                    tracing::debug!("TLS handshake with {peer} did not finish in time");
                                }
                            }
                        }
                    }
                    drop(permit);
                });
            }
            Err(_) => {
                metrics::counter!(bale_util::metrics::HTTP_REFUSED).increment(1);
                // A TLS client could not read a plain 503: it is closed.
                if tls.is_none() {
                    tracker.spawn(refuse(tcp));
                }
            }
        }
    }
    let _ = stop_tx.send(true);
    tracker.close();
    tracker.wait().await;
    Ok(())
}

async fn refuse(mut tcp: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.write_all(&busy())).await;
}

/// Serves one connection, HTTP/1.1 or HTTP/2 (by its preface: ALPN on
/// TLS, prior knowledge in clear).
async fn connection<T>(
    stream: T,
    watch: Arc<ConnWatch>,
    info: ConnInfo,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(stream);
    let body_timeout = limits.body_timeout;
    let w = watch.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let (router, watch) = (router.clone(), w.clone());
        watch.request_started();
        // A body that stops delivering fails its request (a PUT keeps
        // nothing); the response body reports when the request is over.
        let mut req = req.map(|b| Body::new(tower_http::timeout::TimeoutBody::new(body_timeout, b)));
        req.extensions_mut().insert(info);
        async move {
            let resp = router.oneshot(req).await.unwrap_or_else(|e: Infallible| match e {});
            Ok::<_, Infallible>(resp.map(|inner| Body::new(Tracked { inner, watch })))
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    builder.http1().keep_alive(true);
    // hyper's defaults (200 streams, 16 KiB of headers) bound a connection.
    builder.http2().max_concurrent_streams(200);
    let conn = builder.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!("connection ended: {e}");
                }
                return;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                if let Some(why) = watch.expired(&limits) {
                    tracing::debug!("closing a connection: {why}");
                    metrics::counter!(bale_util::metrics::HTTP_TIMED_OUT).increment(1);
                    return;
                }
            }
        }
    }
}
