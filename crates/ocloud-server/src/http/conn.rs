//! The accept loop: each connection served by hyper's HTTP/1, with the limits that keep idle
//! and slow clients from exhausting the service (axum::serve has none of them):
//!
//! - a **header timeout**: a request head must arrive whole within it; hyper starts the clock
//!   whenever it waits for a head, so it is also the idle keep-alive timeout;
//! - a **cap on open connections** (`--max-connections`), kept below the descriptor limit. At
//!   the cap, the older half of the connections is asked to close gracefully: idle ones close
//!   at once, requests in flight finish first, a head that has begun to arrive keeps its slot
//!   until it completes or the header timeout ends it, and so does a new connection whose first
//!   request is waiting unread. The newest connections are left alone, so a client that just
//!   got in is not closed by the clients behind it. The new connection waits (5 s) for a slot
//!   that frees, and at most 64 wait: more are closed at once, so a flood cannot open more
//!   descriptors than the cap;
//! - **accept errors** (EMFILE, ENFILE, ENOBUFS…) are logged and retried after a pause instead
//!   of spinning;
//! - **lanes**: each connection is served on one thread for its whole life ([`super::lanes`]);
//! - **shutdown**: the listener closes at once, connections the kernel had queued are answered
//!   (503/5), then connections drain as above, for at most a minute.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::lanes::Lanes;

/// How long a new connection at the cap waits for a slot before it is closed.
const SLOT_WAIT: Duration = Duration::from_secs(5);
/// New connections waiting for a slot at most; more are closed at once, so a flood cannot
/// open more descriptors than the cap allows.
const MAX_WAITING: usize = 64;
/// How long shutdown waits for connections to finish before it gives up on them.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// The pause after a failed accept (out of descriptors, say) before trying again.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// The connection limits of [`serve`].
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// See the module docs.
    pub header_timeout: Duration,
    /// Open connections at most.
    pub max_connections: usize,
}

/// What a request knows of the connection it came on, in its extensions. One value: each
/// extension is boxed, and a fourth grows the map (axum adds two), so three separate ones
/// were six allocations per request.
#[derive(Clone)]
pub struct Conn {
    /// The client's address.
    pub peer: std::net::SocketAddr,
    /// The socket (plain TCP only): the emulator's reset fault aborts it; the connection
    /// outlives its requests.
    pub fd: Option<std::os::fd::RawFd>,
    /// The stand-in for the socket's writes that sends files with `sendfile` (plain TCP only).
    pub splice: Option<Arc<super::sendfile::Splice>>,
}

/// The address of the client a request came from, as the accept loop recorded it.
pub fn peer(ext: &axum::http::Extensions) -> Option<std::net::SocketAddr> {
    ext.get::<Conn>().map(|c| c.peer)
}

/// One accepted connection, over TLS (after its handshake) when `tls` is given.
async fn serve_tcp(
    http: &hyper::server::conn::http1::Builder,
    tcp: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    app: super::App,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stop: watch::Receiver<bool>,
    shed: Shed,
) {
    match tls {
        None => {
            let fd = std::os::fd::AsRawFd::as_raw_fd(&tcp);
            let splice = Arc::new(super::sendfile::Splice::default());
            let io = super::sendfile::SpliceIo::new(tcp, splice.clone());
            let conn = Conn { peer, fd: Some(fd), splice: Some(splice) };
            serve_one(http, io, conn, app, stop, shed).await
        }
        Some(acceptor) => {
            if let Some(tls) = super::tls::handshake(&acceptor, tcp).await {
                let conn = Conn { peer, fd: None, splice: None };
                serve_one(http, tls, conn, app, stop, shed).await;
            }
        }
    }
}

/// A connection's view of the shedding at the cap: the accept loop publishes the newest
/// accept sequence number that must close if idle; `seq` is this connection's.
struct Shed {
    rx: watch::Receiver<u64>,
    seq: u64,
}

/// Whether bytes wait unread on a socket (a request on its way), without reading them.
fn pending_bytes(fd: std::os::fd::RawFd) -> bool {
    let mut b = [0u8; 1];
    // SAFETY: a one-byte peek into a local buffer on a descriptor the caller keeps open.
    unsafe { libc::recv(fd, b.as_mut_ptr().cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) > 0 }
}

/// One connection until it ends, or closes gracefully on `stop` or `shed`. A shed reaches a
/// connection that has not begun its first request only if nothing is waiting on its socket
/// (`conn.fd`, when known): a client that just connected and sent its request is served, not
/// closed with the request unread.
async fn serve_one<I>(
    http: &hyper::server::conn::http1::Builder,
    io: I,
    conn: Conn,
    app: super::App,
    mut stop: watch::Receiver<bool>,
    mut shed: Shed,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let served = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = served.clone();
    let fd = conn.fd;
    let app = tower::ServiceExt::map_request(app, move |mut req: axum::http::Request<hyper::body::Incoming>| {
        seen.store(true, std::sync::atomic::Ordering::Relaxed);
        req.extensions_mut().insert(conn.clone());
        req
    });
    let conn = http.serve_connection(TokioIo::new(io), TowerToHyperService::new(app));
    tokio::pin!(conn);
    let result = loop {
        let close = tokio::select! {
            r = conn.as_mut() => break r,
            r = stop.wait_for(|s| *s) => r.is_ok(),
            _ = shed.rx.changed() => {
                let old_enough = *shed.rx.borrow_and_update() >= shed.seq;
                let arriving = !served.load(std::sync::atomic::Ordering::Relaxed) && fd.is_some_and(pending_bytes);
                old_enough && !arriving
            }
        };
        if close {
            conn.as_mut().graceful_shutdown();
            break conn.await;
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended");
    }
}

/// Serves `app` on `listener` (over TLS when `tls` is given), each connection on one of
/// `lanes`, until `shutdown` resolves, then waits for every connection and stops the lanes.
pub async fn serve(
    listener: TcpListener,
    app: super::App,
    limits: Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    lanes: Lanes,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max));
    // `stop`: drain everything. `shed`: at the cap, the accept sequence number up to which
    // idle connections close (the older half).
    let (stop_tx, stop_rx) = watch::channel(false);
    let (shed_tx, shed_rx) = watch::channel(0u64);
    let mut accepted = 0u64;
    let mut http = hyper::server::conn::http1::Builder::new();
    // `writev`: body buffers are queued as they are, never copied into hyper's own buffer,
    // which zero-copy downloads need (see `sendfile`) and which saves a copy anyway.
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true).writev(true);
    let http = Arc::new(http);
    let waiting = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; retrying shortly");
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                    continue;
                }
            },
        };
        // No Nagle delay: a response whose body comes after its headers (every download) was
        // held until the client's delayed ACK, a few ms per small file.
        let _ = tcp.set_nodelay(true);
        // For a listener bound wider than loopback (`0.0.0.0`), whose loopback peers did not
        // inherit it (a no-op otherwise): switched only now, after BBR's set-up asked for
        // pacing, which keeps some of its cost (a 512 MiB download: 110–170 ms of service
        // CPU, against 40–60 ms when inherited from a loopback listener, 300–370 under BBR).
        ocloud_io::tcp::unpaced_if_loopback(&tcp, peer.ip());
        let (slots, http, app, tls, waiting) = (slots.clone(), http.clone(), app.clone(), tls.clone(), waiting.clone());
        accepted += 1;
        let seq = accepted;
        let (stop, mut shed) = (stop_rx.clone(), shed_rx.clone());
        let shed_tx = shed_tx.clone();
        let Some(tcp) = to_lane(tcp) else { continue };
        lanes.spawn(async move {
            let Some(tcp) = on_lane(tcp) else { return };
            let permit = match slots.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    use std::sync::atomic::Ordering::SeqCst;
                    if waiting.fetch_add(1, SeqCst) >= MAX_WAITING {
                        waiting.fetch_sub(1, SeqCst);
                        return;
                    }
                    tracing::debug!("connection cap reached: closing idle connections");
                    let older_half = seq.saturating_sub(max as u64 / 2 + 1);
                    shed_tx.send_modify(|n| *n = (*n).max(older_half));
                    let got = tokio::time::timeout(SLOT_WAIT, slots.acquire_owned()).await;
                    waiting.fetch_sub(1, SeqCst);
                    match got {
                        Ok(Ok(p)) => p,
                        _ => return,
                    }
                }
            };
            shed.mark_unchanged();
            serve_tcp(&http, tcp, peer, app, tls, stop, Shed { rx: shed, seq }).await;
            drop(permit);
        });
    }
    // Stop accepting now. Connections the kernel completed before this moment are taken and
    // answered (503/5 "stopping", one request each) rather than reset with their requests
    // unread when the socket closes.
    let mut queued = http.as_ref().clone();
    queued.keep_alive(false);
    while let Some(Ok((tcp, peer))) = futures_util::FutureExt::now_or_never(listener.accept()) {
        let (queued, app, tls) = (queued.clone(), app.clone(), tls.clone());
        // A slot each when there is one, so the drain below waits for them too.
        let permit = slots.clone().try_acquire_owned().ok();
        let Some(tcp) = to_lane(tcp) else { continue };
        lanes.spawn(async move {
            let _permit = permit;
            let Some(tcp) = on_lane(tcp) else { return };
            // Signals that never fire (their senders live as long as the task): the one
            // request is answered, then keep-alive being off closes the connection.
            let (_stop, never) = watch::channel(false);
            let (_shed, never_shed) = watch::channel(0u64);
            serve_tcp(&queued, tcp, peer, app, tls, never, Shed { rx: never_shed, seq: u64::MAX }).await;
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every slot back: every connection is closed; a client that never finishes (a stalled
    // download, a trickling upload) is given up on after DRAIN_LIMIT.
    if tokio::time::timeout(DRAIN_LIMIT, slots.acquire_many(max as u32)).await.is_err() {
        tracing::warn!(limit_s = DRAIN_LIMIT.as_secs(), "connections still open at shutdown: closing them");
    }
    lanes.stop().await;
}

/// A connection leaving the accept loop's runtime for a lane's: it is registered with the
/// lane's I/O driver there ([`on_lane`]).
fn to_lane(tcp: tokio::net::TcpStream) -> Option<std::net::TcpStream> {
    tcp.into_std().map_err(|e| tracing::warn!(error = %e, "a connection could not be handed over")).ok()
}

fn on_lane(tcp: std::net::TcpStream) -> Option<tokio::net::TcpStream> {
    tokio::net::TcpStream::from_std(tcp)
        .map_err(|e| tracing::warn!(error = %e, "a connection could not be taken on"))
        .ok()
}
