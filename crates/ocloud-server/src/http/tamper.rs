//! The emulator's byte-level faults, on a request body (an upload as the handler reads it) or
//! a response body (as the client receives it): stall, connection reset, truncation and
//! corruption, each after a number of bytes, and a bandwidth limit. Toxiproxy's toxics, but
//! per request and on both directions.
//!
//! - **stall**: after N bytes nothing more flows, for `ms` or until the peer gives up;
//! - **reset**: after N bytes the connection is aborted with a TCP RST (`SO_LINGER` 0; over
//!   TLS, where the socket is not at hand, it is closed abruptly instead);
//! - **truncate**: after N bytes the body ends. A response then falls short of its
//!   `Content-Length` and the connection closes; a request body ends early for the handler,
//!   which answers as it does to any short upload, while the rest is read and dropped;
//! - **corrupt**: `bytes` bytes from offset N are inverted (XOR 0xFF), lengths unchanged;
//! - **bandwidth**: at most `bytes_per_s`, paced in twentieths of a second.
//!
//! Pauses use real time, not the service's clock: they model the network.

use std::os::fd::RawFd;
use std::time::Duration;

use axum::body::{Body, BodyDataStream};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

/// Which body a byte-level fault acts on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// What the client sends (uploads).
    Request,
    /// What the service answers (downloads); the default.
    #[default]
    Response,
}

/// A byte-level fault.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tamper {
    /// Nothing flows after `after` bytes, for `ms` (`None`: until the peer gives up).
    Stall { after: u64, ms: Option<u64> },
    /// The connection is reset after `after` bytes.
    Reset { after: u64 },
    /// The body ends after `after` bytes.
    Truncate { after: u64 },
    /// `bytes` bytes from offset `after` are inverted.
    Corrupt { after: u64, bytes: u64 },
    /// At most this many bytes a second.
    Bandwidth { bytes_per_s: u64 },
}

/// Aborts the connection on `fd` with a reset: linger 0 makes the close send RST, and the
/// shutdown makes hyper's next read or write on it fail, so it closes at once.
fn reset(fd: RawFd) {
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: `fd` is the socket of the connection serving this request, open while the
    // request's body is alive; both calls only change its state.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
        libc::shutdown(fd, libc::SHUT_RDWR);
    }
}

/// Waits until the bytes written so far have left: the socket's send queue is empty (plain
/// TCP), or a moment (TLS). At most 2 s.
async fn drained(fd: Option<RawFd>) {
    let Some(fd) = fd else {
        tokio::time::sleep(Duration::from_millis(20)).await;
        return;
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    // The first pause lets hyper write what it holds; then the kernel's queue is watched.
    tokio::time::sleep(Duration::from_millis(2)).await;
    while tokio::time::Instant::now() < deadline {
        let mut queued: libc::c_int = 0;
        // SAFETY: TIOCOUTQ writes one int; `fd` is the open socket of this request.
        let ok = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut queued) } == 0;
        if !ok || queued == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

struct State {
    inner: BodyDataStream,
    /// A part of a chunk still to send.
    pending: Option<Bytes>,
    /// Bytes passed on so far.
    seen: u64,
    t: Tamper,
    side: Side,
    fd: Option<RawFd>,
    /// The fault has acted (stall, reset, truncate): what follows flows untouched or not at all.
    done: bool,
    ended: bool,
}

/// `body` with the fault `t` applied; `fd` is the connection's socket, for a reset.
pub fn wrap(body: Body, t: Tamper, side: Side, fd: Option<RawFd>) -> Body {
    let st = State { inner: body.into_data_stream(), pending: None, seen: 0, t, side, fd, done: false, ended: false };
    // Fused: the body may be polled again after its end.
    Body::from_stream(futures_util::stream::unfold(st, next).fuse())
}

async fn next(mut st: State) -> Option<(Result<Bytes, axum::Error>, State)> {
    if st.ended {
        return None;
    }
    let mut chunk = match st.pending.take() {
        Some(b) => b,
        None => match st.inner.next().await? {
            Ok(b) => b,
            Err(e) => return Some((Err(e), st)),
        },
    };
    let start = st.seen;
    let after = match st.t {
        Tamper::Bandwidth { bytes_per_s } => {
            let slice = (bytes_per_s / 20).max(1) as usize;
            if chunk.len() > slice {
                st.pending = Some(chunk.split_off(slice));
            }
            let nanos = chunk.len() as u128 * 1_000_000_000 / u128::from(bytes_per_s.max(1));
            tokio::time::sleep(Duration::from_nanos(nanos as u64)).await;
            st.seen += chunk.len() as u64;
            return Some((Ok(chunk), st));
        }
        Tamper::Stall { after, .. } | Tamper::Reset { after } | Tamper::Truncate { after } => after,
        Tamper::Corrupt { after, bytes } => {
            let end = after.saturating_add(bytes);
            let len = chunk.len() as u64;
            if start + len > after && start < end {
                let mut b = BytesMut::from(&chunk[..]);
                let (from, to) = (after.saturating_sub(start) as usize, (end - start).min(len) as usize);
                b[from..to].iter_mut().for_each(|x| *x ^= 0xFF);
                chunk = b.freeze();
            }
            st.seen += len;
            return Some((Ok(chunk), st));
        }
    };
    if st.done || start + (chunk.len() as u64) <= after {
        st.seen += chunk.len() as u64;
        return Some((Ok(chunk), st));
    }
    if start < after {
        // The bytes before the offset go first; the fault acts on the next call.
        let head = chunk.split_to((after - start) as usize);
        st.pending = Some(chunk);
        st.seen = after;
        return Some((Ok(head), st));
    }
    st.done = true;
    if st.side == Side::Response && matches!(st.t, Tamper::Reset { .. } | Tamper::Truncate { .. }) {
        // What came before the offset reaches the peer first: hyper writes it out while the
        // body is pending, then the kernel sends it.
        drained(st.fd).await;
    }
    match st.t {
        Tamper::Stall { ms, .. } => {
            match ms {
                Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                None => std::future::pending::<()>().await,
            }
            st.seen += chunk.len() as u64;
            Some((Ok(chunk), st))
        }
        Tamper::Reset { .. } => {
            if let Some(fd) = st.fd {
                reset(fd);
            }
            st.ended = true;
            Some((Err(axum::Error::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset))), st))
        }
        _ => {
            // Truncated: a request's remaining bytes are read and dropped, so the client
            // sees the answer rather than a reset.
            if st.side == Side::Request {
                let rest = Body::from_stream(st.inner);
                tokio::spawn(super::linger::drain(rest));
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(chunks: &[&'static [u8]], t: Tamper) -> (Vec<u8>, bool) {
        let owned: Vec<_> = chunks.iter().map(|c| Ok::<_, std::io::Error>(Bytes::from_static(c))).collect();
        let stream = futures_util::stream::iter(owned);
        let mut out = wrap(Body::from_stream(stream), t, Side::Response, None).into_data_stream();
        let mut got = Vec::new();
        while let Some(c) = out.next().await {
            match c {
                Ok(b) => got.extend_from_slice(&b),
                Err(_) => return (got, true),
            }
        }
        (got, false)
    }

    #[tokio::test]
    async fn truncate_corrupt_reset_and_stall_act_at_the_offset() {
        assert_eq!(run(&[b"abcd", b"efgh"], Tamper::Truncate { after: 6 }).await, (b"abcdef".to_vec(), false));
        assert_eq!(run(&[b"abcd", b"efgh"], Tamper::Truncate { after: 0 }).await, (vec![], false));
        let (c, _) = run(&[b"abcd", b"efgh"], Tamper::Corrupt { after: 3, bytes: 2 }).await;
        assert_eq!(c, [b'a', b'b', b'c', !b'd', !b'e', b'f', b'g', b'h']);
        assert_eq!(run(&[b"abcd", b"efgh"], Tamper::Reset { after: 5 }).await, (b"abcde".to_vec(), true));
        let stalled = run(&[b"abcd", b"efgh"], Tamper::Stall { after: 4, ms: Some(1) }).await;
        assert_eq!(stalled, (b"abcdefgh".to_vec(), false));
        let paced = run(&[b"abcdefgh"], Tamper::Bandwidth { bytes_per_s: 1_000_000 }).await;
        assert_eq!(paced, (b"abcdefgh".to_vec(), false));
    }

    #[tokio::test]
    async fn a_stall_without_end_holds_the_rest() {
        let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"abcd"))]);
        let mut out = wrap(Body::from_stream(stream), Tamper::Stall { after: 2, ms: None }, Side::Response, None)
            .into_data_stream();
        assert_eq!(&out.next().await.unwrap().unwrap()[..], b"ab");
        // The source has more at once: only the stall keeps it back.
        assert!(futures_util::FutureExt::now_or_never(out.next()).is_none(), "the stream went on");
    }
}
