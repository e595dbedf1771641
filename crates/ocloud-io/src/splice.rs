//! Moving bytes from a socket into a file inside the kernel (Linux `splice(2)`): socket →
//! pipe → file. The socket's pages are handed to the pipe by reference and copied once, into
//! the file's page cache, where reading them into a buffer and writing that buffer copies
//! twice and wakes this process for every read. This is how a download reaches `cp`'s pace.

use std::fs::File;
use std::io;
use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Asked of the pipe: as much as one call moves (the default pipe holds 64 KiB).
const PIPE: usize = 1 << 20;

/// How a [`socket_to_file`] or a [`file_to_socket`] stopped short.
#[derive(Debug)]
pub enum Stopped {
    /// The socket failed, or closed early (`UnexpectedEof`). Receiving, everything that
    /// arrived before is in the file.
    Socket(io::Error),
    /// The file failed: receiving, writing it (a full disk) or making the pipe, and what was
    /// read but not written is lost; sending, reading it, or it ended early.
    File(io::Error),
}

/// Moves exactly `len` bytes from the blocking socket `sock` into `file` at its current
/// position (`file` must not be in append mode: `splice` refuses those). `progress` hears of
/// every batch written. Blocks; a read timeout set on the socket applies.
pub fn socket_to_file(sock: &TcpStream, file: &File, len: u64, mut progress: impl FnMut(u64)) -> Result<(), Stopped> {
    let (read_end, write_end) = pipe().map_err(Stopped::File)?;
    let read_end = File::from(read_end);
    // SAFETY: a valid pipe descriptor and an integer; a refused size leaves the default.
    let room = match unsafe { libc::fcntl(write_end.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE as libc::c_int) } {
        n if n > 0 => n as usize,
        // SAFETY: as above; the pipe keeps the size it has.
        _ => unsafe { libc::fcntl(write_end.as_raw_fd(), libc::F_GETPIPE_SZ) }.max(4096) as usize,
    };
    let mut left = len;
    let (mut copying, mut buffer) = (false, Vec::new());
    while left > 0 {
        let want = left.min(room as u64) as usize;
        let got = match splice(sock.as_raw_fd(), write_end.as_raw_fd(), want) {
            // A socket that takes no splice (a sandbox's network stack): read it instead.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
                return copy_all(sock, file, len, left, &mut progress);
            }
            other => other.map_err(Stopped::Socket)?,
        };
        if got == 0 {
            return Err(Stopped::Socket(early_end(len, left)));
        }
        // The pipe is emptied before the next read: on any stop, what arrived is written.
        let mut out = 0;
        while out < got {
            let n = if copying {
                copy(&read_end, file, got - out, &mut buffer)
            } else {
                splice(read_end.as_raw_fd(), file.as_raw_fd(), got - out)
            };
            match n {
                Ok(0) => return Err(Stopped::File(io::ErrorKind::WriteZero.into())),
                Ok(n) => out += n,
                // A file that takes no splice (some file systems, devices): copied instead.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) && !copying => copying = true,
                Err(e) => return Err(Stopped::File(e)),
            }
        }
        left -= got as u64;
        progress(got as u64);
    }
    Ok(())
}

/// Bytes per `sendfile` call of [`file_to_socket`] (and so per progress report).
const SEND: usize = 4 << 20;

/// Sends `len` bytes of `file` from `offset` to the blocking socket `sock` with `sendfile(2)`:
/// the file's pages go to the socket by reference, no copy in this process (through a
/// buffer where the kernel refuses it). `progress` hears of every batch sent. Blocks; a
/// write timeout set on the socket applies (`TimedOut`). A file that ends early is
/// `Stopped::File(UnexpectedEof)`: the peer was promised `len` bytes.
pub fn file_to_socket(
    file: &File,
    offset: u64,
    len: u64,
    sock: &TcpStream,
    mut progress: impl FnMut(u64),
) -> Result<(), Stopped> {
    let (mut at, end) = (offset, offset + len);
    while at < end {
        let want = (end - at).min(SEND as u64) as usize;
        let n = match send_file(sock, file, at, want) {
            Ok(n) => n,
            // A file or socket that takes no sendfile: through a buffer.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
                return send_all(file, at, end, sock, &mut progress);
            }
            Err(e) => return Err(sending_failed(e)),
        };
        if n == 0 {
            return Err(Stopped::File(file_ended(len, end - at)));
        }
        at += n as u64;
        progress(n as u64);
    }
    Ok(())
}

/// Sends the bytes of `file` from `at` to `end` through a buffer.
fn send_all(
    file: &File,
    mut at: u64,
    end: u64,
    sock: &TcpStream,
    progress: &mut impl FnMut(u64),
) -> Result<(), Stopped> {
    use std::os::unix::fs::FileExt;
    let start = at;
    let mut buffer = vec![0u8; (end - at).min(PIPE as u64) as usize];
    while at < end {
        let want = (end - at).min(buffer.len() as u64) as usize;
        let n = match file.read_at(&mut buffer[..want], at) {
            Ok(0) => return Err(Stopped::File(file_ended(end - start, end - at))),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Stopped::File(e)),
        };
        send_bytes(sock, &buffer[..n])?;
        at += n as u64;
        progress(n as u64);
    }
    Ok(())
}

/// Writes `bytes` to the blocking socket `sock`, its failures told as [`file_to_socket`]'s
/// (a write timeout is `TimedOut`).
pub fn send_bytes(mut sock: &TcpStream, bytes: &[u8]) -> Result<(), Stopped> {
    use std::io::Write;
    sock.write_all(bytes).map_err(sending_failed)
}

/// A failed `sendfile` or write to the socket: the socket's (a blocking socket's write
/// timeout shows as `WouldBlock`), unless the error is the file's own (`EIO`, say).
fn sending_failed(e: io::Error) -> Stopped {
    use io::ErrorKind::*;
    match e.kind() {
        WouldBlock | TimedOut => Stopped::Socket(io::Error::new(TimedOut, "the connection stopped taking data")),
        BrokenPipe | ConnectionReset | ConnectionAborted | NotConnected => Stopped::Socket(e),
        _ if e.raw_os_error() == Some(libc::EIO) => Stopped::File(e),
        _ => Stopped::Socket(e),
    }
}

fn file_ended(len: u64, left: u64) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, format!("the file ended after {} of {len} bytes", len - left))
}

/// One `sendfile` of up to `len` bytes of `file` from `offset` to `sock` (blocking or not:
/// a full non-blocking socket is `WouldBlock`); retried when interrupted.
pub fn send_file(sock: &impl AsFd, file: &File, offset: u64, len: usize) -> io::Result<usize> {
    let mut off = libc::off_t::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    loop {
        // SAFETY: valid descriptors (borrowed for the call), a local offset.
        let n = unsafe { libc::sendfile(sock.as_fd().as_raw_fd(), file.as_raw_fd(), &mut off, len) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Moves up to `len` bytes from the pipe to the file through a buffer.
fn copy(mut pipe: &File, mut file: &File, len: usize, buffer: &mut Vec<u8>) -> io::Result<usize> {
    use std::io::{Read, Write};
    buffer.resize(len.min(PIPE), 0);
    let n = pipe.read(buffer)?;
    file.write_all(&buffer[..n])?;
    Ok(n)
}

/// Moves `left` of `len` bytes from the socket to the file through a buffer: for a socket
/// that takes no splice (a sandbox's network stack).
fn copy_all(
    mut sock: &TcpStream,
    mut file: &File,
    len: u64,
    mut left: u64,
    progress: &mut impl FnMut(u64),
) -> Result<(), Stopped> {
    use std::io::{Read, Write};
    let mut buffer = vec![0u8; PIPE];
    while left > 0 {
        let want = left.min(PIPE as u64) as usize;
        let n = match sock.read(&mut buffer[..want]) {
            Ok(0) => return Err(Stopped::Socket(early_end(len, left))),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(Stopped::Socket(quiet())),
            Err(e) => return Err(Stopped::Socket(e)),
        };
        file.write_all(&buffer[..n]).map_err(Stopped::File)?;
        left -= n as u64;
        progress(n as u64);
    }
    Ok(())
}

fn early_end(len: u64, left: u64) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, format!("the connection closed after {} of {len} bytes", len - left))
}

fn quiet() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the connection went quiet")
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors the call writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just opened and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// One `splice` at the descriptors' own positions; retried when interrupted. A socket read
/// timeout shows as `WouldBlock`, turned into `TimedOut`.
fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    loop {
        // SAFETY: valid descriptors, null offsets (the descriptors' own positions are used).
        let n = unsafe { libc::splice(from, std::ptr::null_mut(), to, std::ptr::null_mut(), len, libc::SPLICE_F_MOVE) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Err(quiet()),
            _ => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};

    fn pair() -> (std::net::TcpStream, std::net::TcpStream) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        (a, l.accept().unwrap().0)
    }

    #[test]
    fn moves_exactly_len_bytes_after_the_files_position() {
        let (mut tx, rx) = pair();
        let content: Vec<u8> = (0..3 * PIPE + 12_345).map(|i| (i * 31 % 251) as u8).collect();
        let sent = content.clone();
        let writer = std::thread::spawn(move || {
            tx.write_all(&sent).unwrap();
            tx.write_all(b"NEXT").unwrap();
            tx
        });
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"head").unwrap();
        let mut seen = 0;
        socket_to_file(&rx, &file, content.len() as u64, |n| seen += n).unwrap();
        assert_eq!(seen, content.len() as u64);
        let _tx = writer.join().unwrap();
        let mut back = Vec::new();
        file.rewind().unwrap();
        file.read_to_end(&mut back).unwrap();
        assert!(back[..4] == *b"head" && back[4..] == content[..], "the file holds the bytes in order");
        let mut next = [0; 4];
        (&rx).read_exact(&mut next).unwrap();
        assert_eq!(&next, b"NEXT", "not a byte past len was taken");
    }

    #[test]
    fn an_early_close_keeps_what_arrived_and_says_so() {
        let (mut tx, rx) = pair();
        tx.write_all(&[9u8; 100_000]).unwrap();
        drop(tx);
        let file = tempfile::tempfile().unwrap();
        match socket_to_file(&rx, &file, 200_000, |_| {}) {
            Err(Stopped::Socket(e)) => {
                assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
                assert!(e.to_string().contains("after 100000 of 200000"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(file.metadata().unwrap().len(), 100_000);
    }

    #[test]
    fn a_full_disk_is_the_files_fault_even_where_splice_is_refused() {
        let (mut tx, rx) = pair();
        tx.write_all(&[1u8; 64 << 10]).unwrap();
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        match socket_to_file(&rx, &full, 64 << 10, |_| {}) {
            Err(Stopped::File(e)) => assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_quiet_connection_times_out() {
        let (_tx, rx) = pair();
        rx.set_read_timeout(Some(std::time::Duration::from_millis(20))).unwrap();
        let file = tempfile::tempfile().unwrap();
        match socket_to_file(&rx, &file, 10, |_| {}) {
            Err(Stopped::Socket(e)) => assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sends_exactly_len_bytes_from_the_offset_and_a_short_file_is_the_files_fault() {
        let (tx, mut rx) = pair();
        let content: Vec<u8> = (0..SEND + 54_321).map(|i| (i * 13 % 251) as u8).collect();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&content).unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            rx.read_to_end(&mut got).unwrap();
            got
        });
        let mut reported = 0;
        file_to_socket(&file, 7, content.len() as u64 - 7, &tx, |n| reported += n).unwrap();
        // Promised more than the file holds: the file's fault, after what it had was sent.
        match file_to_socket(&file, 10, content.len() as u64, &tx, |_| {}) {
            Err(Stopped::File(e)) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}"),
            other => panic!("{other:?}"),
        }
        drop(tx);
        let got = reader.join().unwrap();
        assert_eq!(reported, content.len() as u64 - 7);
        assert!(got[..content.len() - 7] == content[7..], "the bytes from the offset, exact");
        assert!(got[content.len() - 7..] == content[10..], "then what the short file had");
    }

    #[test]
    fn a_peer_gone_is_the_sockets_fault() {
        let (tx, rx) = pair();
        drop(rx);
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&vec![5u8; 8 << 20]).unwrap();
        match file_to_socket(&file, 0, 8 << 20, &tx, |_| {}) {
            Err(Stopped::Socket(e)) => {
                assert!(matches!(e.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }
}
