//! Whether anything was committed, read without a lock: the header of SQLite's WAL index.
//!
//! In WAL mode every connection of every process maps the database's `-shm` file, whose
//! first 96 bytes are two copies of a 48-byte header (<https://www.sqlite.org/walformat.html>,
//! §2.1). Every commit rewrites it (its change counter, the last frame, their checksums),
//! second copy first; a reader reads the first copy, then the second, and trusts them when
//! they agree — SQLite's own readers do this, then take a lock to pin what they read. The
//! caches only need to know *that* something changed, so a fingerprint of the agreeing header
//! is enough, and costs no lock, where `PRAGMA data_version` opens a read transaction (two
//! `fcntl` locks) per request.
//!
//! The header is read through the mapping SQLite itself made for one connection (the VFS's
//! `xShmMap`), which lasts as long as that connection: no descriptor of ours is opened or
//! closed on the file (closing one would drop every POSIX lock this process holds on it,
//! SQLite's included), and no path is guessed.

use std::sync::atomic::{AtomicU32, Ordering, fence};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, ffi};

/// The two header copies, in 32-bit words.
const WORDS: usize = 2 * 12;
/// The size of a WAL-index region, as SQLite maps them.
const REGION: i32 = 32 * 1024;

/// The start of a connection's WAL index.
pub struct WalIndex {
    base: *const u32,
    /// The connection whose mapping `base` points into, kept open.
    _conn: Arc<Mutex<Connection>>,
}

// SAFETY: the mapping lives as long as the connection held here, and is only read, with
// atomic loads: sharing the pointer across threads is sound.
unsafe impl Send for WalIndex {}
unsafe impl Sync for WalIndex {}

impl WalIndex {
    /// The WAL index of `conn`'s main database; `None` when it has none mapped (not in WAL
    /// mode, a VFS without shared memory) or it is not initialised: the caller then asks
    /// SQLite.
    pub fn of(conn: &Arc<Mutex<Connection>>) -> Option<WalIndex> {
        let c = conn.lock().unwrap_or_else(|p| p.into_inner());
        // A read maps the index if it is not yet.
        c.query_row("PRAGMA data_version", [], |_| Ok(())).ok()?;
        let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
        // SAFETY: a live connection (its lock held); the call writes one pointer into `file`.
        let rc = unsafe {
            ffi::sqlite3_file_control(
                c.handle(),
                c"main".as_ptr(),
                ffi::SQLITE_FCNTL_FILE_POINTER,
                (&mut file as *mut *mut ffi::sqlite3_file).cast(),
            )
        };
        if rc != ffi::SQLITE_OK || file.is_null() {
            return None;
        }
        // SAFETY: the database file of a live connection, and its methods table.
        let map = unsafe {
            let methods = (*file).pMethods;
            if methods.is_null() || (*methods).iVersion < 2 {
                return None;
            }
            (*methods).xShmMap?
        };
        let mut region: *mut std::ffi::c_void = std::ptr::null_mut();
        // SAFETY: region 0, without extending the file: SQLite hands back its own mapping,
        // already made for this connection, which stays until the connection closes.
        let rc = unsafe { map(file, 0, REGION, 0, &mut region) };
        drop(c);
        if rc != ffi::SQLITE_OK || region.is_null() {
            return None;
        }
        let index = WalIndex { base: region.cast(), _conn: conn.clone() };
        index.fingerprint()?;
        Some(index)
    }

    /// A fingerprint of the header that changes with every commit; `None` when the two
    /// copies differ (a commit is writing them) or the index is not initialised.
    pub fn fingerprint(&self) -> Option<u64> {
        let mut words = [0u32; WORDS];
        for (i, word) in words.iter_mut().enumerate() {
            if i == WORDS / 2 {
                // The writer writes the second copy, then the first: read them the other way.
                fence(Ordering::Acquire);
            }
            // SAFETY: within the mapped region (32 KiB), 4-byte aligned (a page start);
            // another process writes it, hence the atomic load.
            *word = unsafe { AtomicU32::from_ptr(self.base.add(i).cast_mut()) }.load(Ordering::Relaxed);
        }
        let (first, second) = words.split_at(WORDS / 2);
        // `isInit` is the first byte of the fourth word, whatever the byte order.
        let initialised = first[3].to_ne_bytes()[0] == 1;
        if first != second || !initialised {
            return None;
        }
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        first.hash(&mut h);
        Some(h.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_commit_of_any_connection_changes_the_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let open = || {
            let c = Connection::open(&path).unwrap();
            c.pragma_update(None, "journal_mode", "WAL").unwrap();
            c
        };
        let (a, b) = (open(), open());
        a.execute("CREATE TABLE t (v INTEGER)", []).unwrap();
        let watcher = Arc::new(Mutex::new(open()));
        let index = WalIndex::of(&watcher).expect("mapped");
        let mut seen = vec![index.fingerprint().unwrap()];
        for v in 0..20 {
            (if v % 2 == 0 { &a } else { &b }).execute("INSERT INTO t VALUES (?1)", [v]).unwrap();
            let now = index.fingerprint().unwrap();
            assert!(!seen.contains(&now), "commit {v} left the fingerprint as it was");
            seen.push(now);
            assert_eq!(index.fingerprint(), Some(now), "stable while nothing commits");
        }
        // A checkpoint that restarts the log, then a commit: still a new value.
        a.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
        b.execute("INSERT INTO t VALUES (99)", []).unwrap();
        assert!(!seen.contains(&index.fingerprint().unwrap()));
    }

    #[test]
    fn no_wal_no_index() {
        let dir = tempfile::tempdir().unwrap();
        let c = Connection::open(dir.path().join("db")).unwrap();
        c.execute("CREATE TABLE t (v INTEGER)", []).unwrap();
        assert!(WalIndex::of(&Arc::new(Mutex::new(c))).is_none(), "a rollback journal has no WAL index");
    }
}
