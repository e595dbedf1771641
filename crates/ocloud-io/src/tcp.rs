//! TCP settings for connections that never leave the machine.

use std::net::IpAddr;
#[cfg(unix)]
use std::os::fd::AsRawFd;

/// Whether `peer` is this machine (an IPv4-mapped `::ffff:127.0.0.1` too).
#[cfg(unix)]
fn is_loopback(peer: IpAddr) -> bool {
    peer.to_canonical().is_loopback()
}

/// Makes a connection to a loopback `peer` use Reno congestion control; other connections
/// keep the system's.
///
/// Why: BBR (chosen by many administrators and cloud images, and this project's build
/// machine's default; Linux's own is CUBIC, which does not pace) paces every
/// connection at its estimate of the path's bandwidth, sending smaller segments on timers. On
/// loopback there is no path to estimate and no one to share it with, so pacing only costs:
/// a 512 MiB download took the service ~6× the CPU (320 vs 50 ms) and ~1.7× the time. Reno
/// does not pace, and is always allowed to unprivileged processes (the kernel marks it
/// unrestricted). Set before the connection starts (on a listener, on a socket before its
/// `connect`) it takes full effect; set on an established connection, BBR's set-up has
/// already asked for pacing, which stays on (the kernel keeps the socket's pacing status).
/// Best effort: an error (a kernel without Reno, another system) changes nothing.
#[cfg(unix)]
pub fn unpaced_if_loopback(sock: &impl AsRawFd, peer: IpAddr) {
    if is_loopback(peer) {
        let _ = set_congestion(sock, b"reno");
    }
}

/// Elsewhere the system's choice stays.
#[cfg(not(unix))]
pub fn unpaced_if_loopback<S>(_: &S, _: IpAddr) {}

#[cfg(target_os = "linux")]
fn set_congestion(sock: &impl AsRawFd, name: &[u8]) -> std::io::Result<()> {
    // SAFETY: a valid descriptor; the name's pointer and length describe one live slice.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    if r == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

#[cfg(all(unix, not(target_os = "linux")))]
fn set_congestion(_: &impl AsRawFd, _: &[u8]) -> std::io::Result<()> {
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The connection's congestion control, as the kernel reports it.
    fn congestion(sock: &impl AsRawFd) -> String {
        let mut name = [0u8; 16];
        let mut len = name.len() as libc::socklen_t;
        // SAFETY: a valid descriptor, a buffer and its length.
        let r = unsafe {
            libc::getsockopt(
                sock.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_CONGESTION,
                name.as_mut_ptr().cast(),
                &mut len,
            )
        };
        assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
        String::from_utf8_lossy(&name[..len as usize]).trim_end_matches('\0').to_owned()
    }

    #[test]
    fn loopback_connections_go_unpaced_and_others_keep_the_system_choice() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, peer) = listener.accept().unwrap();
        let system = congestion(&server);
        unpaced_if_loopback(&server, "192.0.2.1".parse().unwrap());
        assert_eq!(congestion(&server), system, "a remote peer keeps the system's choice");
        unpaced_if_loopback(&server, peer.ip());
        assert_eq!(congestion(&server), "reno");
        unpaced_if_loopback(&client, "::ffff:127.0.0.1".parse().unwrap());
        assert_eq!(congestion(&client), "reno", "an IPv4-mapped loopback address");
    }
}
