//! Large transfers over plain HTTP/1.1 on a connection of their own, whose body goes between
//! the socket and the file inside the kernel ([`ocloud_io::splice`]). Linux only.
//!
//! - **Downloads**: from the socket into the file with `splice`: one copy of each byte
//!   where reading through reqwest makes three (socket → hyper's buffer → our buffer → the
//!   page cache).
//! - **Uploads** (form A, spec §3.9): the multipart framing written here, the content sent
//!   from the page cache with `sendfile`: no copy in this process, where reqwest reads the
//!   file into buffers and copies them into the socket.
//!
//! Used only for an `http://` URL with no proxy in the environment (reqwest would go through
//! it) and a file known to be large (small ones share reqwest's pooled connections). A
//! loopback connection is made without pacing from its start (`ocloud_io::tcp`). The
//! answer's head is read here: a download's `200`/`206` with a `Content-Length` and no
//! coding is spliced, an upload's success is read whole; an error answer with a length (its
//! first MiB) goes to the usual error path, so retries and token refreshes are the same.
//! Anything else before sending (no connection; for a download also a redirection, a chunked
//! body, a head this reader does not take) is sent again through reqwest, on a transfer's
//! first attempt; a later attempt finding no connection is a retry like any other.
//!
//! The transfer holds a thread of the blocking pool while it lasts, network waits included:
//! a splice or sendfile blocks. The CLI runs a few large transfers at a time (4 by default).

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use ocloud_io::splice::Stopped;

use crate::transfer::Progress;

/// Files at least this large take a connection of their own.
pub(crate) const LARGE: u64 = 1 << 20;

/// The longest answer head read; the largest error body kept.
const MAX_HEAD: usize = 64 << 10;
const MAX_ERROR_BODY: u64 = 1 << 20;

/// What reqwest was told, so that both ways connect alike.
pub(crate) struct Settings {
    pub(crate) resolve: Vec<(String, SocketAddr)>,
    pub(crate) connect_timeout: Duration,
    pub(crate) read_timeout: Duration,
}

/// Where a request goes.
pub(crate) struct Target {
    host: String,
    port: u16,
    /// `Host:` header.
    authority: String,
    path: String,
}

impl Target {
    /// `None` unless `url` is plain `http://`, without user info, and no proxy is set in the
    /// environment (reqwest would go through it).
    pub(crate) fn of(url: &str) -> Option<Target> {
        let u = url::Url::parse(url).ok()?;
        let proxied = ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
        if u.scheme() != "http" || !u.username().is_empty() || u.password().is_some() || proxied {
            return None;
        }
        let host = u.host_str()?.to_owned();
        let authority = match u.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let mut path = u.path().to_owned();
        if let Some(q) = u.query() {
            path = format!("{path}?{q}");
        }
        // IPv6 literals come bracketed, as a URL writes them; connecting wants them bare.
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        Some(Target { host, port: u.port_or_known_default()?, authority, path })
    }
}

/// What a GET brought.
pub(crate) enum Answer {
    /// The content, still on the socket.
    Body(Body),
    /// The service's error answer, read whole.
    Refused(reqwest::Response),
    /// Not for splicing (a redirection, a chunked or encoded body): ask through reqwest.
    Unsuitable,
}

/// A `200` or `206` whose `len` bytes of content are still to be read.
pub(crate) struct Body {
    pub(crate) status: u16,
    /// Where a `206`'s `Content-Range` starts.
    pub(crate) range_start: Option<u64>,
    len: u64,
    /// Content read along with the head.
    early: Vec<u8>,
    sock: TcpStream,
    read_timeout: Duration,
}

/// Connects to the host's addresses (the `resolve` overrides first, as reqwest), one after
/// another; `None`: no connection of its own (reqwest connects more patiently: both address
/// families at once, its own retries), so let it try.
async fn connect(s: &Settings, t: &Target) -> Option<TcpStream> {
    // As reqwest: host names compare without case, the last override wins.
    let addr =
        s.resolve.iter().rfind(|(h, _)| h.eq_ignore_ascii_case(&t.host)).map(|(_, a)| SocketAddr::new(a.ip(), t.port));
    let connect = async {
        let addrs: Vec<SocketAddr> = match addr {
            Some(a) => vec![a],
            None => tokio::net::lookup_host((t.host.as_str(), t.port)).await?.collect(),
        };
        let mut failed = io::Error::new(io::ErrorKind::NotFound, "no address");
        for a in addrs {
            match connect_to(a).await {
                Ok(sock) => return Ok(sock),
                Err(e) => failed = e,
            }
        }
        Err(failed)
    };
    match in_time(s.connect_timeout, "connecting", connect).await {
        Ok(sock) => {
            let _ = sock.set_nodelay(true);
            Some(sock)
        }
        Err(e) => {
            tracing::debug!(error = %e, "no connection of its own, asking through reqwest");
            None
        }
    }
}

/// Connects to `addr`; to a loopback address without pacing, set before connecting so that
/// the system's congestion control (BBR's pacing) never starts (see `ocloud_io::tcp`).
async fn connect_to(addr: SocketAddr) -> io::Result<TcpStream> {
    let sock = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    ocloud_io::tcp::unpaced_if_loopback(&sock, addr.ip());
    sock.connect(addr).await
}

/// The request's first lines, up to the headers particular to it.
fn request_head(method: &str, t: &Target, token: &str) -> String {
    format!(
        "{method} {} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nUser-Agent: ocloud-client/{}\r\n\
         Accept: */*\r\nConnection: close\r\n",
        t.path,
        t.authority,
        env!("CARGO_PKG_VERSION"),
    )
}

/// Sends `GET` with the bearer token (and `Range: bytes={from}-` when `from > 0`), and reads
/// the answer's head.
pub(crate) async fn get(s: &Settings, t: &Target, token: &str, from: u64) -> io::Result<Answer> {
    if http::HeaderValue::from_str(token).is_err() {
        // Not a header value: reqwest refuses it the way it does.
        return Ok(Answer::Unsuitable);
    }
    let Some(mut sock) = connect(s, t).await else { return Ok(Answer::Unsuitable) };
    let range = if from > 0 { format!("Range: bytes={from}-\r\n") } else { String::new() };
    let request = format!("{}{range}\r\n", request_head("GET", t, token));
    in_time(s.read_timeout, "sending", sock.write_all(request.as_bytes())).await?;
    let Some(head) = read_head(&mut sock, s.read_timeout).await? else { return Ok(Answer::Unsuitable) };
    match (head.status, head.len()) {
        (200 | 206, Some(len)) if head.plain() => {
            let range_start = crate::transfer::content_range_start(&head.headers);
            let Head { status, early, .. } = head;
            Ok(Answer::Body(Body { status, range_start, len, early, sock, read_timeout: s.read_timeout }))
        }
        (400..=599, _) if head.plain() => Ok(Answer::Refused(head.whole(&mut sock, s).await?)),
        _ => Ok(Answer::Unsuitable),
    }
}

/// An answer's head, and the body's first bytes read along with it.
struct Head {
    status: u16,
    headers: http::HeaderMap,
    early: Vec<u8>,
}

/// Reads an answer's head; `None`: beyond what this reader takes (more headers, looser
/// syntax), reqwest may.
async fn read_head(sock: &mut TcpStream, wait: Duration) -> io::Result<Option<Head>> {
    let mut buf = Vec::with_capacity(16 << 10);
    loop {
        if in_time(wait, "waiting for the answer", sock.read_buf(&mut buf)).await? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the connection closed before an answer"));
        }
        let mut slots = [httparse::EMPTY_HEADER; 64];
        let mut head = httparse::Response::new(&mut slots);
        let Ok(parsed) = head.parse(&buf) else { return Ok(None) };
        match parsed {
            httparse::Status::Complete(n) => {
                let mut headers = http::HeaderMap::new();
                for h in head.headers.iter() {
                    if let (Ok(name), Ok(value)) =
                        (http::HeaderName::from_bytes(h.name.as_bytes()), http::HeaderValue::from_bytes(h.value))
                    {
                        headers.append(name, value);
                    }
                }
                let status = head.code.unwrap_or(0);
                return Ok(Some(Head { status, headers, early: buf.split_off(n) }));
            }
            httparse::Status::Partial if buf.len() >= MAX_HEAD => return Ok(None),
            httparse::Status::Partial => {}
        }
    }
}

impl Head {
    fn text(&self, name: http::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body's announced length.
    fn len(&self) -> Option<u64> {
        self.text(http::header::CONTENT_LENGTH).and_then(|v| v.trim().parse::<u64>().ok())
    }

    /// Whether the body comes as it is: not chunked, not encoded.
    fn plain(&self) -> bool {
        !self.headers.contains_key(http::header::TRANSFER_ENCODING)
            && self.text(http::header::CONTENT_ENCODING).is_none_or(|c| c.eq_ignore_ascii_case("identity"))
    }

    /// The whole answer (its body's first MiB) as reqwest would have given it. The
    /// connection closes after the answer (`Connection: close`), so reading to its end is safe.
    async fn whole(self, sock: &mut TcpStream, s: &Settings) -> io::Result<reqwest::Response> {
        let cap = self.len().unwrap_or(MAX_ERROR_BODY).min(MAX_ERROR_BODY);
        let Head { status, headers, early: mut body } = self;
        let rest = cap.saturating_sub(body.len() as u64);
        in_time(s.read_timeout, "reading the answer", (&mut *sock).take(rest).read_to_end(&mut body)).await?;
        body.truncate(cap as usize);
        let mut answer = http::Response::new(body);
        *answer.status_mut() = http::StatusCode::from_u16(status).map_err(io::Error::other)?;
        *answer.headers_mut() = headers;
        Ok(reqwest::Response::from(answer))
    }
}

/// An upload's `multipart/form-data` body around the file's content: the `description`
/// part, the `file` part's head, and the closing boundary, as reqwest's `Form` frames them.
pub(crate) struct Form {
    boundary: String,
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl Form {
    /// The form for a file named `file_name`, described by the JSON `description`.
    pub(crate) fn new(description: &str, file_name: &str) -> Form {
        let boundary = format!("{:032x}", rand::random::<u128>());
        // Quoted as reqwest quotes it (RFC 7578 has no `filename*`).
        let name = file_name.replace('\\', "\\\\").replace('"', "\\\"").replace('\r', "\\\r").replace('\n', "\\\n");
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"description\"\r\n\r\n{description}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        );
        let tail = format!("\r\n--{boundary}--\r\n");
        Form { boundary, head: head.into_bytes(), tail: tail.into_bytes() }
    }
}

/// What an upload of a file on a connection of its own came to.
pub(crate) enum Posted {
    /// A success, read whole.
    Stored(reqwest::Response),
    /// The service's error answer, read whole.
    Refused(reqwest::Response),
    /// Not sent (no connection of its own, a token that is no header value): send it through
    /// reqwest.
    Unsent,
    /// Answered (once sent whole, or early), but not as this reader takes an answer, or a
    /// success whose body could not be read: not sent again, it may be stored.
    Unclear(io::Error),
    /// Reading the file failed (or it shrank while sent): the connection is dropped.
    File(io::Error),
}

/// How long an answer sent before the whole body was taken (a refusal) is waited for, once
/// sending failed.
const EARLY_ANSWER: Duration = Duration::from_secs(2);

/// Sends `POST` of `form` around the `size` bytes of `file`, the content going from the page
/// cache to the socket with `sendfile`: the large-upload twin of [`get`]. `progress` hears
/// of every batch sent. `Err`: the connection failed (sending, or waiting for the answer),
/// which may be retried as reqwest's failures are.
pub(crate) async fn post_file(
    s: &Settings,
    t: &Target,
    token: &str,
    form: &Form,
    file: std::fs::File,
    size: u64,
    progress: Option<Arc<dyn Progress>>,
) -> io::Result<Posted> {
    if http::HeaderValue::from_str(token).is_err() {
        return Ok(Posted::Unsent);
    }
    let Some(mut sock) = connect(s, t).await else { return Ok(Posted::Unsent) };
    let length = form.head.len() as u64 + size + form.tail.len() as u64;
    let request = format!(
        "{}Content-Type: multipart/form-data; boundary={}\r\nContent-Length: {length}\r\n\r\n",
        request_head("POST", t, token),
        form.boundary
    );
    in_time(s.read_timeout, "sending", sock.write_all(&[request.as_bytes(), &form.head].concat())).await?;

    let std_sock = Arc::new(sock.into_std()?);
    std_sock.set_nonblocking(false)?;
    std_sock.set_write_timeout(Some(s.read_timeout))?;
    let stop = StopOnDrop(Some(std_sock.clone()));
    let (out, tail) = (std_sock.clone(), form.tail.clone());
    let task = tokio::task::spawn_blocking(move || {
        ocloud_io::splice::file_to_socket(&file, 0, size, &out, reporter(&progress))?;
        ocloud_io::splice::send_bytes(&out, &tail)
    });
    let sent = task.await.map_err(io::Error::other)?;
    stop.disarm();
    let std_sock = Arc::into_inner(std_sock).expect("the sending task has ended");
    std_sock.set_nonblocking(true)?;
    let mut sock = TcpStream::from_std(std_sock)?;

    let head = match sent {
        Ok(()) => read_head(&mut sock, s.read_timeout).await?,
        Err(Stopped::File(e)) => return Ok(Posted::File(e)),
        // The service may have answered before taking the whole body (a refusal, or a
        // success once it had the content): read it when it is there, else report the failure.
        Err(Stopped::Socket(e)) => match read_head(&mut sock, EARLY_ANSWER).await {
            Ok(head) => head,
            Err(_) => return Err(e),
        },
    };
    match head {
        Some(head) if head.plain() && head.status >= 200 => answered(head, &mut sock, s).await,
        Some(head) => Ok(Posted::Unclear(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the answer to the upload ({}) is not one this client reads", head.status),
        ))),
        None => Ok(Posted::Unclear(io::Error::new(
            io::ErrorKind::InvalidData,
            "the answer to the upload could not be read",
        ))),
    }
}

/// An upload's answer, read whole: a success that cannot be read whole is [`Posted::Unclear`]
/// (never sent again), an error answer that cannot is a failure like any other.
async fn answered(head: Head, sock: &mut TcpStream, s: &Settings) -> io::Result<Posted> {
    match head.status {
        400.. => Ok(Posted::Refused(head.whole(sock, s).await?)),
        200..300 => Ok(match head.whole(sock, s).await {
            Ok(r) => Posted::Stored(r),
            Err(e) => Posted::Unclear(e),
        }),
        status => Ok(Posted::Unclear(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the answer to the upload ({status}) is not one this client reads"),
        ))),
    }
}

impl Body {
    /// Writes the content into `file` at its position (not in append mode); the progress
    /// hears of every batch. Whatever stops it, every byte that arrived is in the file.
    pub(crate) async fn into_file(
        self,
        file: std::fs::File,
        progress: Option<Arc<dyn Progress>>,
    ) -> Result<(), Stopped> {
        let Body { len, early, sock, read_timeout, .. } = self;
        let sock = sock.into_std().map_err(Stopped::Socket)?;
        sock.set_nonblocking(false).map_err(Stopped::Socket)?;
        sock.set_read_timeout(Some(read_timeout)).map_err(Stopped::Socket)?;
        let sock = Arc::new(sock);
        // The transfer holds a blocking thread until it ends; if the caller stops waiting
        // (a time-out, a `select!`), the connection is shut so that it ends now, and no
        // longer writes into a part file that a next attempt may be using.
        let _stop = StopOnDrop(Some(sock.clone()));
        let task = tokio::task::spawn_blocking(move || {
            let advance = reporter(&progress);
            // A server sending more than it announced: the rest is not the file's.
            let early = &early[..early.len().min(usize::try_from(len).unwrap_or(usize::MAX))];
            (&file).write_all(early).map_err(Stopped::File)?;
            advance(early.len() as u64);
            ocloud_io::splice::socket_to_file(&sock, &file, len - early.len() as u64, advance)
        });
        task.await.map_err(|e| Stopped::File(io::Error::other(e)))?
    }
}

/// Tells `progress`, if any, of each batch moved.
fn reporter(progress: &Option<Arc<dyn Progress>>) -> impl Fn(u64) + '_ {
    move |n| {
        if let Some(p) = progress {
            p.advance(n);
        }
    }
}

/// Shuts a connection down when dropped, unless disarmed: a blocking transfer whose caller
/// stopped waiting (a time-out, a `select!`) then ends at once.
struct StopOnDrop(Option<Arc<std::net::TcpStream>>);

impl StopOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(sock) = &self.0 {
            let _ = sock.shutdown(std::net::Shutdown::Both);
        }
    }
}

async fn in_time<T>(limit: Duration, what: &str, f: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, format!("timed out {what}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::sync::Mutex;

    #[test]
    fn only_plain_http_urls_take_their_own_connection() {
        let t = Target::of("http://127.0.0.1:8080/cloud/v1/files/x/content/y?a=1").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.authority.as_str()), ("127.0.0.1", 8080, "127.0.0.1:8080"));
        assert_eq!(t.path, "/cloud/v1/files/x/content/y?a=1");
        let t = Target::of("http://[::1]/f").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.authority.as_str()), ("::1", 80, "[::1]"));
        assert!(Target::of("https://cloudapi.orange.com/cloud/v1/files/x/content/y").is_none());
        assert!(Target::of("http://user:pw@host/f").is_none());
    }

    /// A peer that answers each connection with the next scripted bytes (sent in two
    /// writes, so the body does not all come with the head) and keeps the request heads.
    fn peer(script: Vec<Vec<u8>>) -> (String, Arc<Mutex<Vec<String>>>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/cloud/v1/files/f/content/k", l.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let heads = seen.clone();
        std::thread::spawn(move || {
            for answer in script {
                let (mut c, _) = l.accept().unwrap();
                let mut head = Vec::new();
                let mut byte = [0u8];
                while !head.ends_with(b"\r\n\r\n") && c.read(&mut byte).unwrap() == 1 {
                    head.push(byte[0]);
                }
                heads.lock().unwrap().push(String::from_utf8(head).unwrap());
                let cut = answer.len().min(answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0) + 10);
                c.write_all(&answer[..cut]).unwrap();
                c.flush().unwrap();
                let _ = c.write_all(&answer[cut..]);
            }
        });
        (url, seen)
    }

    fn answer(head: &str, body: &[u8]) -> Vec<u8> {
        [head.replace('\n', "\r\n").as_bytes(), b"\r\n", body].concat()
    }

    fn manager() -> crate::ApiManager {
        let m = crate::ApiManager::new("id", "secret", "http://127.0.0.1:1/cb").unwrap();
        m.init_with_access_token("T0K");
        m
    }

    fn content(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[tokio::test]
    async fn a_large_download_is_spliced_on_its_own_connection_and_resumed_by_range() {
        let c = content(3 << 20);
        let cut = 1_234_567;
        let (url, heads) = peer(vec![
            // Cut short: announced whole, closed part-way.
            answer(&format!("HTTP/1.1 200 OK\nContent-Length: {}\n", c.len()), &c[..cut]),
            answer(
                &format!(
                    "HTTP/1.1 206 Partial Content\nContent-Length: {}\nContent-Range: bytes {cut}-{}/{}\n",
                    c.len() - cut,
                    c.len() - 1,
                    c.len()
                ),
                &c[cut..],
            ),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f.bin");
        let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let s = seen.clone();
        let progress: Arc<dyn Progress> = Arc::new(move |n| {
            s.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        });
        let size = manager().fetch_to_path(&url, &dest, Some(progress), Some(c.len() as u64)).await.unwrap();
        assert_eq!(size, c.len() as u64);
        assert!(std::fs::read(&dest).unwrap() == c, "whole and exact");
        assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), c.len() as u64, "every byte counted once");
        let heads = heads.lock().unwrap();
        assert_eq!(heads.len(), 2);
        for h in heads.iter() {
            assert!(h.starts_with("GET /cloud/v1/files/f/content/k HTTP/1.1\r\n"), "{h}");
            assert!(h.contains("Authorization: Bearer T0K\r\n") && h.contains("Connection: close\r\n"), "{h}");
        }
        assert!(!heads[0].contains("Range") && heads[1].contains(&format!("Range: bytes={cut}-\r\n")), "{heads:?}");
    }

    #[tokio::test]
    async fn an_error_answer_is_the_services_error() {
        let body = br#"{"code":60,"message":"Resource not found","description":"no such file"}"#;
        let (url, _) = peer(vec![answer(
            &format!("HTTP/1.1 404 Not Found\nContent-Type: application/json\nContent-Length: {}\n", body.len()),
            body,
        )]);
        let dir = tempfile::tempdir().unwrap();
        match manager().fetch_to_path(&url, &dir.path().join("f"), None, Some(LARGE)).await {
            Err(crate::Error::Api(a)) => {
                assert_eq!((a.status, a.code, a.description.as_str()), (404, Some(60), "no such file"))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no file, no part");
    }

    #[tokio::test]
    async fn chunked_answers_are_asked_again_through_reqwest() {
        let c = content(LARGE as usize);
        let chunked = answer(
            "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n",
            &[format!("{:x}\r\n", c.len()).as_bytes(), &c, b"\r\n0\r\n\r\n"].concat(),
        );
        let body = br#"{"code":60,"message":"Resource not found","description":"gone"}"#;
        let error = answer(
            "HTTP/1.1 404 Not Found\nTransfer-Encoding: chunked\n",
            &[format!("{:x}\r\n", body.len()).as_bytes(), body, b"\r\n0\r\n\r\n"].concat(),
        );
        let (url, heads) = peer(vec![chunked.clone(), chunked, error.clone(), error]);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f");
        manager().fetch_to_path(&url, &dest, None, Some(LARGE)).await.unwrap();
        assert!(std::fs::read(&dest).unwrap() == c);
        match manager().fetch_to_path(&url, &dir.path().join("g"), None, Some(LARGE)).await {
            Err(crate::Error::Api(a)) => assert_eq!((a.status, a.code), (404, Some(60)), "decoded, so classified"),
            other => panic!("{other:?}"),
        }
        let heads = heads.lock().unwrap();
        let own: Vec<bool> = heads.iter().map(|h| h.contains("Connection: close")).collect();
        assert_eq!(own, [true, false, true, false], "{heads:?}");
    }

    #[tokio::test]
    async fn a_range_not_asked_for_or_a_size_not_the_files_keeps_nothing() {
        let c = content(2 << 20);
        let (url, _) = peer(vec![
            answer(
                &format!(
                    "HTTP/1.1 206 Partial Content\nContent-Length: {}\nContent-Range: bytes 0-{}/{}\n",
                    c.len(),
                    c.len() - 1,
                    c.len()
                ),
                &c,
            ),
            answer(&format!("HTTP/1.1 200 OK\nContent-Length: {}\n", c.len()), &c),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f");
        std::fs::write(crate::partial_path(&dest), &c[..1000]).unwrap();
        match manager().fetch_to_path(&url, &dest, None, Some(c.len() as u64)).await {
            Err(crate::Error::Invalid(m)) => assert!(m.contains("range not asked for"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(!dest.exists());
        std::fs::remove_file(crate::partial_path(&dest)).unwrap();
        // The whole file, but not the size the file info gave.
        match manager().fetch_to_path(&url, &dest, None, Some(3 << 20)).await {
            Err(crate::Error::Invalid(m)) => assert!(m.contains("got 2097152 bytes, the file has 3145728"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no file, no part");
    }

    #[tokio::test]
    async fn a_download_given_up_on_closes_its_connection() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/f", l.local_addr().unwrap());
        let (started, ready) = tokio::sync::oneshot::channel();
        let peer = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8];
            while !head.ends_with(b"\r\n\r\n") && c.read(&mut byte).unwrap() == 1 {
                head.push(byte[0]);
            }
            c.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 4 * LARGE).as_bytes()).unwrap();
            c.write_all(&content(LARGE as usize)).unwrap();
            started.send(()).unwrap();
            // The client reads no more and does not close unless told to stop.
            let mut rest = Vec::new();
            c.read_to_end(&mut rest).map(|_| rest.len())
        });
        let dir = tempfile::tempdir().unwrap();
        let m = manager();
        let dest = dir.path().join("f");
        let download = m.fetch_to_path(&url, &dest, None, Some(4 * LARGE));
        tokio::select! {
            r = download => panic!("cannot end: {r:?}"),
            _ = ready => {}
        }
        let seen = tokio::task::spawn_blocking(move || peer.join().unwrap()).await.unwrap();
        assert_eq!(seen.unwrap(), 0, "the peer saw the connection closed, not a read time-out");
    }

    /// A peer for one upload: reads the request's head and `read` bytes of its body (all of it
    /// when `None`), answers `answer` and closes. Gives back the head and the body read.
    fn upload_peer(
        answer: Vec<u8>,
        read: Option<usize>,
    ) -> (crate::ApiManager, std::thread::JoinHandle<(String, Vec<u8>)>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        let peer = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8];
            while !head.ends_with(b"\r\n\r\n") && c.read(&mut byte).unwrap() == 1 {
                head.push(byte[0]);
            }
            let head = String::from_utf8(head).unwrap();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            let mut body = vec![0u8; read.unwrap_or(length).min(length)];
            c.read_exact(&mut body).unwrap();
            c.write_all(&answer).unwrap();
            (head, body)
        });
        let endpoints = crate::Endpoints { api: base.clone(), upload: base.clone(), oauth: base };
        let m = crate::ApiManager::builder("id", "secret", "http://127.0.0.1:1/cb")
            .endpoints(endpoints)
            .retry(crate::RetryPolicy { max_attempts: 1, ..Default::default() })
            .build()
            .unwrap();
        m.init_with_access_token("T0K");
        (m, peer)
    }

    /// A JSON answer with its length.
    fn json_answer(status: &str, json: &[u8]) -> Vec<u8> {
        answer(&format!("HTTP/1.1 {status}\nContent-Type: application/json\nContent-Length: {}\n", json.len()), json)
    }

    /// A file of `n` bytes of [`content`] in a new temp dir (kept alive by the caller).
    fn big_file(n: usize) -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>) {
        let c = content(n);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.bin");
        std::fs::write(&path, &c).unwrap();
        (dir, path, c)
    }

    #[tokio::test]
    async fn a_large_upload_is_sent_with_sendfile_on_its_own_connection() {
        let (_dir, path, c) = big_file(3 << 20);
        let json = br#"{"fileId":"id1","fileName":"say \"hi\".bin"}"#;
        let (m, peer) = upload_peer(json_answer("201 Created", json), None);
        let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let s = seen.clone();
        let progress: Arc<dyn Progress> = Arc::new(move |n| {
            s.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        });
        let r = m.files().upload_path(&path, Some("fold"), Some("say \"hi\".bin"), Some(progress)).await.unwrap();
        assert_eq!((r.file_id.as_str(), r.file_name.as_str()), ("id1", "say \"hi\".bin"));
        assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), c.len() as u64, "every byte counted once");
        let (head, body) = tokio::task::spawn_blocking(move || peer.join().unwrap()).await.unwrap();
        assert!(head.starts_with("POST /cloud/v1/files/content HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("Authorization: Bearer T0K\r\n") && head.contains("Connection: close\r\n"), "{head}");
        let boundary =
            head.lines().find_map(|l| l.strip_prefix("Content-Type: multipart/form-data; boundary=")).unwrap();
        // Framed as reqwest's `Form` frames it (which the service's parser is tested with).
        let expected = [
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"description\"\r\n\r\n\
                 {{\"name\":\"say \\\"hi\\\".bin\",\"size\":\"{}\",\"folder\":\"fold\"}}\r\n\
                 --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"say \\\"hi\\\".bin\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n",
                c.len()
            )
            .into_bytes(),
            c.clone(),
            format!("\r\n--{boundary}--\r\n").into_bytes(),
        ]
        .concat();
        assert_eq!(body.len(), expected.len());
        assert!(body == expected, "the multipart body: {}", String::from_utf8_lossy(&body[..300]));
    }

    #[tokio::test]
    async fn an_upload_refused_before_its_body_is_read_gives_the_services_error() {
        let (_dir, path, _) = big_file(8 << 20);
        let json = br#"{"error":{"code":"PDK_RP_0004","label":"INVALID_TOKEN","details":"OIDC rejected the token"}}"#;
        // Answered after 64 KiB of the body, the rest never read: the peer closes with it unread.
        let (m, peer) = upload_peer(json_answer("401 Unauthorized", json), Some(64 << 10));
        match m.files().upload_path(&path, None, None, None).await {
            Err(crate::Error::Api(a)) => assert_eq!(a.status, 401, "{a:?}"),
            other => panic!("{other:?}"),
        }
        peer.join().unwrap();
    }

    #[tokio::test]
    async fn a_success_answered_before_the_body_ends_is_stored_once() {
        let (_dir, path, _) = big_file(8 << 20);
        let json = br#"{"fileId":"id1","fileName":"big.bin"}"#;
        // The service answers once it has the content, before the closing boundary: here
        // after 64 KiB, the rest never read. The peer takes one connection only: a second
        // attempt would find none.
        let (m, peer) = upload_peer(json_answer("201 Created", json), Some(64 << 10));
        let r = m.files().upload_path(&path, None, None, None).await.unwrap();
        assert_eq!(r.file_id, "id1");
        peer.join().unwrap();
    }

    #[tokio::test]
    async fn a_large_download_reserves_its_space_and_one_the_disk_cannot_hold_stops_at_once() {
        let c = content(3 << 20);
        let ok = answer(&format!("HTTP/1.1 200 OK\nContent-Length: {}\n", c.len()), &c);
        let (url, _) = peer(vec![ok.clone(), ok]);
        let dir = tempfile::tempdir().unwrap();
        // Announced larger than any file this file system takes: stopped before the body.
        let dest = dir.path().join("huge.bin");
        match manager().fetch_to_path(&url, &dest, None, Some(1 << 60)).await {
            Err(crate::Error::Io { path, source }) => {
                assert!(path.ends_with(".huge.bin.ocloud-part"), "{path}");
                // ext4 takes no such file; tmpfs, XFS or btrfs would, and have not the space.
                let why = source.to_string();
                assert!(why.contains("takes no file of") || why.contains("not enough free space"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no part left");
        // A size it takes: reserved, then written, whole.
        let dest = dir.path().join("f.bin");
        manager().fetch_to_path(&url, &dest, None, Some(c.len() as u64)).await.unwrap();
        assert!(std::fs::read(&dest).unwrap() == c);
    }
}
