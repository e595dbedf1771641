//! Lingering close for uploads refused early (413, 401, 503 "disk full"…): the answer comes
//! while the client is still sending, and closing the connection with unread data makes the
//! kernel send a reset, which many clients report instead of the answer. So, as nginx's
//! `lingering_close` does, the rest of a refused body is read and thrown away, bounded in
//! bytes and time, before the connection is closed.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use http_body::{Body as HttpBody, Frame, SizeHint};

/// At most this much of a refused body is read and dropped.
const LINGER_BYTES: u64 = 64 << 20;
/// For at most this long, and this long without data.
const LINGER_TIME: Duration = Duration::from_secs(10);
const LINGER_IDLE: Duration = Duration::from_secs(2);

/// The request body, shared with the middleware that drains what the handler left.
struct Shared(Arc<Mutex<Option<Body>>>);

impl HttpBody for Shared {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|b| b.size_hint()).unwrap_or_default()
    }
}

/// Middleware of the upload routes: see the module docs.
pub async fn linger(req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let shared = Arc::new(Mutex::new(Some(body)));
    let res = next.run(Request::from_parts(parts, Body::new(Shared(shared.clone())))).await;
    if res.status().is_client_error() || res.status().is_server_error() {
        let rest = shared.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(body) = rest.filter(|b| !b.is_end_stream()) {
            // After the answer: hyper sends it now and keeps reading the body for this task.
            tokio::spawn(drain(body));
        }
    }
    res
}

/// Reads and drops what is left of a refused request's body (bounded); for a spawned task.
pub async fn drain(body: Body) {
    if body.is_end_stream() {
        return;
    }
    let mut stream = body.into_data_stream();
    let mut read = 0u64;
    let _ = tokio::time::timeout(LINGER_TIME, async {
        while read < LINGER_BYTES {
            match tokio::time::timeout(LINGER_IDLE, stream.next()).await {
                Ok(Some(Ok(chunk))) => read += chunk.len() as u64,
                _ => break,
            }
        }
    })
    .await;
    tracing::debug!(bytes = read, "read and dropped the rest of a refused upload");
}
