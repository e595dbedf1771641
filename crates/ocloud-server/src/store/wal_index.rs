//! Whether anything was committed, read without a lock: the header of SQLite's WAL index.
//!
//! In WAL mode every connection of every process maps the database's `-shm` file, whose
//! first 96 bytes are two copies of a 48-byte header (<https://www.sqlite.org/walformat.html>,
//! §2.1). Every commit rewrites it (the last frame, its checksums, the change counter), second
//! copy first; a reader reads the first copy, then the second, and trusts them when they agree
//! — SQLite's own readers do this, then take a lock to pin what they read. The caches only need
//! to know *that* something changed, so the fingerprint of the agreeing header is enough, and
//! costs no lock: `PRAGMA data_version` opens a read transaction, two `fcntl` locks, per
//! request.
//!
//! The file stays put while any connection holds it: SQLite removes or truncates it only when
//! its last connection closes, and the store keeps one open as long as it lives. The
//! descriptor that maps it is never closed (see [`WalIndex::open`]).

use std::os::fd::AsRawFd;
use std::path::Path;

/// The two header copies.
const HEADER: usize = 96;
/// What is mapped: one page, which every initialised index has.
const MAP: usize = 4096;

/// The start of a database's WAL index, mapped read-only.
pub struct WalIndex {
    base: *const u32,
}

// SAFETY: the mapping is read-only, lives as long as the value, and is only read with
// volatile reads; sharing the pointer across threads is sound.
unsafe impl Send for WalIndex {}
unsafe impl Sync for WalIndex {}

impl WalIndex {
    /// Maps the WAL index of the database at `db`; `None` when it is not there or not yet
    /// initialised (the caller then asks SQLite).
    pub fn open(db: &Path) -> Option<WalIndex> {
        let mut name = db.as_os_str().to_owned();
        name.push("-shm");
        let file = std::fs::File::open(&name).ok()?;
        // Mapping past the end of the file would fault on access.
        if file.metadata().ok()?.len() < MAP as u64 {
            return None;
        }
        // SAFETY: a valid descriptor; a fresh read-only shared mapping of one page, checked
        // below.
        let base =
            unsafe { libc::mmap(std::ptr::null_mut(), MAP, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0) };
        if base == libc::MAP_FAILED {
            return None;
        }
        // Never closed: closing any descriptor of a file drops every POSIX lock this process
        // holds on it, SQLite's included — another process would then take this process's
        // connections for gone, and remove the WAL and its index under them.
        let _ = std::os::fd::IntoRawFd::into_raw_fd(file);
        let index = WalIndex { base: base.cast() };
        index.fingerprint()?;
        Some(index)
    }

    /// A fingerprint of the header that changes with every commit; `None` when the two
    /// copies differ (a commit is writing them) or the index is not initialised.
    pub fn fingerprint(&self) -> Option<u64> {
        let mut copies = [[0u32; HEADER / 8]; 2];
        for (i, copy) in copies.iter_mut().enumerate() {
            for (j, word) in copy.iter_mut().enumerate() {
                // SAFETY: within the mapped page; volatile, as another process writes it.
                *word = unsafe { std::ptr::read_volatile(self.base.add(i * HEADER / 8 + j)) };
            }
            // The writer writes the second copy, then the first: read them the other way.
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        }
        // `isInit` is the first byte of the fourth word, whatever the byte order.
        let initialised = copies[0][3].to_ne_bytes()[0] == 1;
        if copies[0] != copies[1] || !initialised {
            return None;
        }
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        copies[0].hash(&mut h);
        Some(h.finish())
    }
}

impl Drop for WalIndex {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `open`, unmapped once.
        unsafe {
            libc::munmap(self.base as *mut libc::c_void, MAP);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(c: &rusqlite::Connection, v: i64) {
        c.execute("INSERT INTO t VALUES (?1)", [v]).unwrap();
    }

    #[test]
    fn every_commit_of_any_connection_changes_the_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let open = || {
            let c = rusqlite::Connection::open(&path).unwrap();
            c.pragma_update(None, "journal_mode", "WAL").unwrap();
            c
        };
        let (a, b) = (open(), open());
        a.execute("CREATE TABLE t (v INTEGER)", []).unwrap();
        let index = WalIndex::open(&path).expect("mapped");
        let mut seen = vec![index.fingerprint().unwrap()];
        for v in 0..20 {
            commit(if v % 2 == 0 { &a } else { &b }, v);
            let now = index.fingerprint().unwrap();
            assert!(!seen.contains(&now), "commit {v} left the fingerprint as it was");
            seen.push(now);
            assert_eq!(index.fingerprint(), Some(now), "stable while nothing commits");
        }
        // A checkpoint that restarts the log, then a commit: still a new value.
        a.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
        commit(&b, 99);
        assert!(!seen.contains(&index.fingerprint().unwrap()));
    }

    #[test]
    fn no_index_no_mapping() {
        let dir = tempfile::tempdir().unwrap();
        assert!(WalIndex::open(&dir.path().join("none")).is_none());
    }
}
