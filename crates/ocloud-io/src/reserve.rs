//! Reserving a file's space before it is written.

use std::fs::File;
use std::io;

/// Reserves the disk blocks of the first `len` bytes of `file` without changing its size
/// (`fallocate(FALLOC_FL_KEEP_SIZE)`, Linux): a download into a disk too full for it fails
/// at once (`StorageFull`) instead of after moving most of the file, and its blocks are
/// allocated in one piece rather than as the writes come. The size staying as written is
/// what a resumed download reads as "bytes already here". Where the file system or the
/// system cannot, nothing is reserved and `Ok` is returned.
pub fn reserve(file: &File, len: u64) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // Beyond `off_t` (32-bit systems): not reserved; the writes say what they meet.
        let Ok(len) = libc::off_t::try_from(len) else { return Ok(()) };
        // SAFETY: a valid descriptor and plain integers.
        if unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, 0, len) } != 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL) => Ok(()),
                _ => Err(e),
            };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, len);
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn reserves_blocks_keeps_the_size_and_refuses_what_the_disk_cannot_hold() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("f")).unwrap();
        reserve(&file, 8 << 20).unwrap();
        let meta = file.metadata().unwrap();
        assert_eq!(meta.len(), 0, "the size stays");
        // tmpfs and ext4 both take it; a file system that does not is not this test's.
        assert!(meta.blocks() * 512 >= 8 << 20, "8 MiB reserved: {} blocks", meta.blocks());
        let e = reserve(&file, 1 << 60).unwrap_err();
        assert!(matches!(e.kind(), io::ErrorKind::StorageFull | io::ErrorKind::FileTooLarge), "{e}");
    }
}
