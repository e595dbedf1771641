//! The embedded metadata backend: one SQLite file in WAL mode.
//!
//! One writer thread owns the writing connection and a small pool of reader connections
//! serves reads; WAL lets readers run beside the writer and lets `ocloud admin` work on the
//! file while the service runs. `synchronous=FULL`: a commit that returned is on disk.
//!
//! **Group commit.** Every write is a job sent to the writer thread. The thread takes all the
//! jobs waiting when it is free (up to [`MAX_BATCH`]), runs each in a savepoint of one
//! transaction and commits once: concurrent uploads share one WAL fsync instead of queueing
//! for one each. It never waits for more jobs to arrive, so a lone write costs what it did.
//! A job that fails is rolled back to its savepoint and leaves the others alone; each caller
//! hears back only once the batch's commit is on disk (or failed: then every job of the
//! batch gets the commit's error, as nothing of it was kept).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::*;
use crate::clock::Clock;

const NODE_COLS: &str = "id, user_id, parent_id, name, is_dir, size, blob, file_type, mime, metadata, created, updated";

/// The SQLite backend. Cheap to clone.
#[derive(Clone)]
pub struct Sqlite {
    path: PathBuf,
    writer: mpsc::Sender<Job>,
    stats: Arc<WriterStats>,
    readers: Arc<Mutex<Vec<Connection>>>,
    // Never writes. Its WAL index gives the generation; its `PRAGMA data_version`, which
    // changes on every commit of any connection, when the index cannot be read.
    watcher: Arc<Mutex<Connection>>,
    // The WAL index's header, read without a lock: the generation when it can be mapped.
    wal: Option<Arc<super::wal_index::WalIndex>>,
    // Deep-offset paging: per folder, the key of every `STRIDE`-th entry, for a generation.
    checkpoints: Arc<Mutex<CheckpointMap>>,
}

/// Per folder: the generation its checkpoints were taken at, and the checkpoints.
type CheckpointMap = HashMap<NodeId, (u64, Arc<Checkpoints>)>;

/// The `(is_dir, name)` keys of every `STRIDE`-th entry of a folder, in listing order.
type Checkpoints = Vec<(bool, String)>;

/// Distance between two paging checkpoints: a deep page reads at most this many rows more
/// than it shows. 100 of them cost a few kB per 10,000 entries of a folder.
const STRIDE: u64 = 100;

/// Most writes committed by one transaction: bounds how long the writer holds its lock and
/// how much one failed commit takes down with it.
pub const MAX_BATCH: usize = 256;

/// A write waiting for the writer thread. Called with the batch's connection (inside a
/// savepoint) and time, or with the error that kept the batch from starting.
type Job = Box<dyn FnOnce(Result<(&Connection, i64), StoreError>) -> Option<Ran> + Send>;

/// A job that ran: its own error if it failed, and how to answer its caller once the
/// batch's commit is known (`Some`: the commit failed).
struct Ran {
    failed: Option<StoreError>,
    answer: Answer,
}

/// Answers a job's caller, given the batch commit's error if it failed.
type Answer = Box<dyn FnOnce(Option<&StoreError>) + Send>;

/// Counters of the writer thread, for tests and logs.
#[derive(Debug, Default)]
struct WriterStats {
    /// Jobs sent and not yet taken by the writer.
    queued: AtomicU64,
    /// Transactions committed (or attempted).
    batches: AtomicU64,
}

/// The writer thread: takes every job waiting, runs them in one transaction, commits once,
/// then answers. Ends when the last [`Sqlite`] handle is dropped.
fn write_batches(mut conn: Connection, clock: Clock, jobs: mpsc::Receiver<Job>, stats: Arc<WriterStats>) {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        batch.extend(jobs.try_iter().take(MAX_BATCH - 1));
        stats.queued.fetch_sub(batch.len() as u64, Ordering::Relaxed);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        let tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => {
                let e = backend(e);
                batch.into_iter().for_each(|job| drop(job(Err(e.clone()))));
                continue;
            }
        };
        // The time of the transaction, read once the writer holds the database: rows written
        // in commit order carry non-decreasing times.
        let now = clock.now_ms();
        let size = batch.len();
        let mut answers = Vec::with_capacity(size);
        // Set when the transaction itself is lost (SQLite rolls it all back on a full disk or
        // an I/O error): the rest of the batch is refused with that error.
        let mut broken: Option<StoreError> = None;
        for job in batch {
            if let Some(e) = &broken {
                drop(job(Err(e.clone())));
                continue;
            }
            if let Err(e) = tx.prepare_cached("SAVEPOINT job").and_then(|mut st| st.execute([])) {
                let e = backend(e);
                drop(job(Err(e.clone())));
                broken = Some(e);
                continue;
            }
            // A panicking job drops its answer channel (its caller hears of a failed task)
            // and is rolled back like a failed one; the writer lives on.
            let ran = catch_unwind(AssertUnwindSafe(|| job(Ok((&tx, now))))).ok().flatten();
            let ok = ran.as_ref().is_some_and(|r| r.failed.is_none());
            let end = |sql| tx.prepare_cached(sql).and_then(|mut st| st.execute([]));
            let ended = if ok { end("RELEASE job") } else { end("ROLLBACK TO job").and_then(|_| end("RELEASE job")) };
            if let Err(e) = ended {
                broken = Some(ran.as_ref().and_then(|r| r.failed.clone()).unwrap_or_else(|| backend(e)));
            }
            answers.extend(ran);
        }
        let failed = match broken {
            Some(e) => Some(e),
            None => tx.commit().err().map(backend),
        };
        if size > 1 {
            tracing::trace!(writes = size, "group commit");
        }
        for r in answers {
            (r.answer)(failed.as_ref());
        }
    }
}

impl Sqlite {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub fn open(path: &Path, clock: Clock) -> anyhow::Result<Sqlite> {
        let mut conn = connect(path)?;
        migrate(&mut conn, &path.display().to_string())?;
        let watcher = Arc::new(Mutex::new(connect(path)?));
        let (writer, jobs) = mpsc::channel();
        let stats = Arc::new(WriterStats::default());
        let s = stats.clone();
        std::thread::Builder::new().name("sqlite-writer".into()).spawn(move || write_batches(conn, clock, jobs, s))?;
        Ok(Sqlite {
            path: path.to_owned(),
            writer,
            stats,
            readers: Arc::default(),
            wal: super::wal_index::WalIndex::of(&watcher).map(Arc::new),
            watcher,
            checkpoints: Arc::default(),
        })
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        let this = self.clone();
        blocking(move || this.quick(f)).await
    }

    /// A short indexed read on a pooled reader connection, run in place: cheaper than a hop
    /// to the blocking pool, which costs more than the read itself. Long reads (full
    /// listings, subtrees) use [`Self::read`].
    fn quick<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        let pooled = self.readers.lock().expect("reader pool").pop();
        let conn = match pooled {
            Some(c) => c,
            None => connect(&self.path).map_err(backend)?,
        };
        let out = f(&conn).map_err(backend);
        // A read transaction whose rollback failed would pin its old snapshot for every later
        // read on this connection: such a connection is closed, not pooled.
        if conn.is_autocommit() {
            self.readers.lock().expect("reader pool").push(conn);
        }
        out
    }

    /// A page at a deep offset: start from the nearest checkpoint at or before the offset
    /// (a seek on the listing index) instead of counting every skipped entry.
    async fn deep_page(&self, parent: NodeId, q: ChildQuery) -> StoreResult<Vec<Node>> {
        let generation = self.generation().await?;
        let cached = self
            .checkpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&parent)
            .filter(|(g, _)| *g == generation)
            .map(|(_, c)| Arc::clone(c));
        let cps = match cached {
            Some(c) => c,
            None => {
                let c = self
                    .read(move |c| {
                        let mut st = c.prepare_cached(
                            "SELECT is_dir, name FROM nodes WHERE parent_id = ?1 ORDER BY is_dir DESC, name",
                        )?;
                        let mut out = Vec::new();
                        let mut rows = st.query([parent])?;
                        let mut i = 0u64;
                        while let Some(r) = rows.next()? {
                            i += 1;
                            if i.is_multiple_of(STRIDE) {
                                out.push((r.get::<_, bool>(0)?, r.get::<_, String>(1)?));
                            }
                        }
                        Ok(Arc::new(out))
                    })
                    .await?;
                let mut map = self.checkpoints.lock().unwrap_or_else(|p| p.into_inner());
                if map.len() > 1000 {
                    map.clear();
                }
                map.insert(parent, (generation, Arc::clone(&c)));
                c
            }
        };
        let blocks = (q.offset / STRIDE).min(cps.len() as u64);
        if blocks == 0 {
            return self.quick(|c| list_children(c, parent, q));
        }
        let (cp_dir, cp_name) = cps[blocks as usize - 1].clone();
        let skip = q.offset - blocks * STRIDE;
        let want = skip + q.limit.unwrap_or(STRIDE);
        self.quick(move |c| {
            // Entries after the checkpoint: remaining folders (if it is a folder), then files,
            // read whole in the same seek (one statement each, not one per row).
            let mut rows: Vec<Node> = Vec::new();
            if cp_dir {
                let mut st = c.prepare_cached(&format!(
                    "SELECT {NODE_COLS} FROM nodes WHERE parent_id = ?1 AND is_dir = 1 AND name > ?2 ORDER BY name LIMIT ?3"
                ))?;
                rows.extend(
                    st.query_map(params![parent, cp_name, want as i64], node_from_row)?
                        .collect::<rusqlite::Result<Vec<Node>>>()?,
                );
            }
            if (rows.len() as u64) < want {
                let rest = (want - rows.len() as u64) as i64;
                // Two statements, not `(?2 OR name > ?3)`: an OR would defeat the index seek.
                let found = if cp_dir {
                    let mut st = c.prepare_cached(&format!(
                        "SELECT {NODE_COLS} FROM nodes WHERE parent_id = ?1 AND is_dir = 0 ORDER BY name LIMIT ?2"
                    ))?;
                    st.query_map(params![parent, rest], node_from_row)?.collect::<rusqlite::Result<Vec<Node>>>()?
                } else {
                    let mut st = c.prepare_cached(&format!(
                        "SELECT {NODE_COLS} FROM nodes WHERE parent_id = ?1 AND is_dir = 0 AND name > ?2 ORDER BY name LIMIT ?3"
                    ))?;
                    st.query_map(params![parent, cp_name, rest], node_from_row)?
                        .collect::<rusqlite::Result<Vec<Node>>>()?
                };
                rows.extend(found);
            }
            Ok(rows.into_iter().skip(skip as usize).collect())
        })
    }

    /// Runs `f` as one write of the next batch (see the module's notes on group commit) and
    /// returns its result once that batch is durable.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, i64) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (send, recv) = tokio::sync::oneshot::channel::<StoreResult<T>>();
        let job: Job = Box::new(move |call| {
            let (conn, now) = match call {
                Ok(c) => c,
                Err(e) => {
                    let _ = send.send(Err(e));
                    return None;
                }
            };
            let out = f(conn, now);
            let failed = out.as_ref().err().cloned();
            Some(Ran {
                failed,
                // A failed batch kept nothing: every write of it gets the batch's error, even
                // one that had failed on its own (its failure may come from an earlier write
                // of the batch, such as a quota another one used).
                answer: Box::new(move |commit| {
                    let _ = send.send(match commit {
                        Some(e) => Err(e.clone()),
                        None => out,
                    });
                }),
            })
        });
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        if self.writer.send(job).is_err() {
            self.stats.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(StoreError::Unavailable("the metadata writer has stopped".into()));
        }
        recv.await.map_err(|_| StoreError::Backend("metadata write failed: its task panicked".into()))?
    }
}

/// Applies the missing migrations in one transaction (see [`super::migrations`]).
fn migrate(conn: &mut Connection, what: &str) -> anyhow::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let todo = super::migrations::pending(super::migrations::SQLITE, version, what)?;
    for (i, script) in todo.iter().enumerate() {
        tx.execute_batch(script).map_err(|e| anyhow::anyhow!("{what}: migration {}: {e}", version + 1 + i as i64))?;
    }
    tx.pragma_update(None, "user_version", super::migrations::SQLITE.len() as i64)?;
    tx.commit()?;
    if !todo.is_empty() {
        tracing::info!(database = what, from = version, to = super::migrations::SQLITE.len(), "schema migrated");
    }
    Ok(())
}

fn connect(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Every statement of the store fits: none is parsed twice.
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> StoreResult<T> + Send + 'static) -> StoreResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| StoreError::Backend(format!("metadata task failed: {e}")))?
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    let text = e.to_string();
    // SQLITE_FULL: "database or disk is full".
    if text.contains("database or disk is full") {
        return StoreError::Full(text);
    }
    StoreError::Backend(text)
}

fn node_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Node> {
    Ok(Node {
        id: r.get(0)?,
        user_id: r.get(1)?,
        parent_id: r.get(2)?,
        name: r.get(3)?,
        is_dir: r.get(4)?,
        size: r.get::<_, i64>(5)? as u64,
        blob: r.get(6)?,
        file_type: r.get::<_, Option<String>>(7)?.as_deref().map(type_from),
        mime: r.get(8)?,
        metadata: r.get(9)?,
        created: r.get(10)?,
        updated: r.get(11)?,
    })
}

fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        name: r.get(1)?,
        quota: r.get::<_, Option<i64>>(2)?.map(|q| q as u64),
        used: r.get::<_, i64>(3)? as u64,
        disabled: r.get(4)?,
    })
}

const APP_COLS: &str = "id, name, client_id, disabled, secret_hash, redirect_uris, scopes, rate_limit";

fn app_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<App> {
    let uris: String = r.get(5)?;
    Ok(App {
        secret_hash: r.get(4)?,
        redirect_uris: serde_json::from_str(&uris).unwrap_or_default(),
        scopes: r.get(6)?,
        rate_limit: r.get(7)?,
        id: r.get(0)?,
        name: r.get(1)?,
        client_id: r.get(2)?,
        disabled: r.get(3)?,
    })
}

fn get_node(c: &Connection, id: NodeId) -> rusqlite::Result<Option<Node>> {
    c.prepare_cached(&format!("SELECT {NODE_COLS} FROM nodes WHERE id = ?1"))?.query_row([id], node_from_row).optional()
}

/// `f` in one read transaction, begun and ended by cached statements: rusqlite's
/// `unchecked_transaction` parses `BEGIN` and `ROLLBACK` anew each time (~1.5 % of a small
/// upload's service CPU). A read changes nothing, so it always ends by a rollback; should
/// that fail, the connection is left in its transaction and `Sqlite::quick` closes it
/// instead of pooling it.
fn read_tx<T>(c: &Connection, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    c.prepare_cached("BEGIN")?.execute([])?;
    let out = f(c);
    let ended = c.prepare_cached("ROLLBACK").and_then(|mut st| st.execute([]));
    let out = out?;
    ended?;
    Ok(out)
}

fn get_user(c: &Connection, id: i64) -> rusqlite::Result<Option<User>> {
    c.prepare_cached("SELECT id, name, quota, used, disabled FROM users WHERE id = ?1")?
        .query_row([id], user_from_row)
        .optional()
}

fn get_app(c: &Connection, id: i64) -> rusqlite::Result<Option<App>> {
    c.prepare_cached(&format!("SELECT {APP_COLS} FROM apps WHERE id = ?1"))?.query_row([id], app_from_row).optional()
}

fn get_token(c: &Connection, hash: &[u8]) -> rusqlite::Result<Option<TokenRecord>> {
    c.prepare_cached("SELECT kind, user_id, app_id, scope, expires_at, revoked, grant_id FROM tokens WHERE hash = ?1")?
        .query_row([hash], |r| {
            Ok(TokenRecord {
                kind: r.get(0)?,
                user_id: r.get(1)?,
                app_id: r.get(2)?,
                scope: r.get(3)?,
                expires_at: r.get(4)?,
                revoked: r.get(5)?,
                grant: r.get(6)?,
            })
        })
        .optional()
}

fn child(c: &Connection, parent: NodeId, name: &str) -> rusqlite::Result<Option<Node>> {
    c.prepare_cached(&format!("SELECT {NODE_COLS} FROM nodes WHERE parent_id = ?1 AND name = ?2"))?
        .query_row(params![parent, name], node_from_row)
        .optional()
}

fn must_node(c: &Connection, id: NodeId) -> StoreResult<Node> {
    get_node(c, id).map_err(backend)?.ok_or_else(|| StoreError::NotFound(format!("node {id}")))
}

fn insert_folder(c: &Connection, user_id: i64, parent: NodeId, name: &str, now: i64) -> StoreResult<Node> {
    if child(c, parent, name).map_err(backend)?.is_some() {
        return Err(StoreError::AlreadyExists(name.to_owned()));
    }
    c.prepare_cached(
        "INSERT INTO nodes(user_id, parent_id, name, is_dir, created, updated) VALUES (?1, ?2, ?3, 1, ?4, ?4)",
    )
    .and_then(|mut st| st.execute(params![user_id, parent, name, now]))
    .map_err(backend)?;
    must_node(c, c.last_insert_rowid())
}

fn user_row(c: &Connection, id: i64) -> StoreResult<User> {
    get_user(c, id).map_err(backend)?.ok_or_else(|| StoreError::NotFound(format!("user {id}")))
}

fn charge(c: &Connection, user_id: i64, bytes: u64, quota: u64) -> StoreResult<()> {
    let user = user_row(c, user_id)?;
    let free = quota.saturating_sub(user.used);
    if bytes > free {
        return Err(StoreError::QuotaExceeded { needed: bytes, free });
    }
    c.prepare_cached("UPDATE users SET used = used + ?2 WHERE id = ?1")
        .and_then(|mut st| st.execute(params![user_id, bytes as i64]))
        .map_err(backend)?;
    Ok(())
}

/// Inserts a file under `p` (renamed `stem(n).ext` on a clash) and counts its blob reference.
fn insert_file_row(tx: &Connection, p: &Node, file: &NewFile, now: i64) -> StoreResult<NodeId> {
    let mut name = file.name.clone();
    let mut n = 0;
    while child(tx, p.id, &name).map_err(backend)?.is_some() {
        n += 1;
        name = crate::domain::names::clash_name(&file.name, n);
    }
    tx.prepare_cached(
        "INSERT INTO nodes(user_id, parent_id, name, is_dir, size, blob, file_type, mime, metadata, created, updated) \
         VALUES (?1, ?2, ?3, 0, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
    )
    .and_then(|mut st| {
        st.execute(params![
            p.user_id,
            p.id,
            name,
            file.size as i64,
            file.blob,
            type_name(file.file_type),
            file.mime,
            file.metadata,
            now
        ])
    })
    .map_err(backend)?;
    let id = tx.last_insert_rowid();
    let counted = tx
        .prepare_cached("UPDATE blobs SET refs = refs + 1 WHERE key = ?1 AND reaping = 0")
        .and_then(|mut st| st.execute([&file.blob]))
        .map_err(backend)?;
    if counted == 0 {
        // Never claimed, or reaped as an orphan meanwhile: its object may be gone.
        return Err(StoreError::NotFound(format!("blob claim {}", file.blob)));
    }
    Ok(id)
}

/// Drops one reference to a blob; `true` if none is left (its object can go). The row stays,
/// unreferenced since `now`, until the object is deleted: a crash in between leaves it to
/// the reaper.
fn release_blob(tx: &Connection, key: &str, now: i64) -> StoreResult<bool> {
    let refs: i64 = tx
        .prepare_cached("UPDATE blobs SET refs = refs - 1, since = ?2 WHERE key = ?1 RETURNING refs")
        .and_then(|mut st| st.query_row(params![key, now], |r| r.get(0)))
        .map_err(backend)?;
    Ok(refs <= 0)
}

fn list_children(c: &Connection, parent: NodeId, q: ChildQuery) -> rusqlite::Result<Vec<Node>> {
    let kinds = match (q.dirs, q.files) {
        (true, true) => "",
        (true, false) => " AND is_dir = 1",
        (false, true) => " AND is_dir = 0",
        (false, false) => return Ok(Vec::new()),
    };
    let type_filter = if q.file_type.is_some() { " AND (is_dir = 1 OR file_type = ?2)" } else { " AND ?2 IS NULL" };
    // Without a type filter the page is chosen on the listing index alone (no row is
    // read for the skipped entries), then its rows are fetched: an offset deep in a
    // 100,000-entry folder stays cheap.
    let sql = if q.file_type.is_none() && q.offset > 0 {
        format!(
            "SELECT {NODE_COLS} FROM nodes WHERE id IN (SELECT id FROM nodes WHERE parent_id = ?1{kinds} AND ?2 IS NULL \
                     ORDER BY is_dir DESC, name LIMIT ?3 OFFSET ?4) ORDER BY is_dir DESC, name"
        )
    } else {
        format!(
            "SELECT {NODE_COLS} FROM nodes WHERE parent_id = ?1{kinds}{type_filter} \
                     ORDER BY is_dir DESC, name LIMIT ?3 OFFSET ?4"
        )
    };
    let limit = q.limit.map(|l| l as i64).unwrap_or(-1);
    let mut stmt = c.prepare_cached(&sql)?;
    let ft = q.file_type.map(type_name);
    stmt.query_map(params![parent, ft, limit, q.offset as i64], node_from_row)?.collect()
}

/// Reads a single-use record (codes, upload URLs) by hash and marks it used, in the caller's
/// transaction; returns it with whether it had been used already.
fn take_once<T>(
    tx: &Connection,
    table: &str,
    cols: &str,
    hash: &[u8],
    map: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> StoreResult<Option<(T, bool)>> {
    let found = tx
        .query_row(&format!("SELECT {cols}, used FROM {table} WHERE hash = ?1"), [hash], |r| {
            let used: bool = r.get(cols.split(',').count())?;
            Ok((map(r)?, used))
        })
        .optional()
        .map_err(backend)?;
    if found.is_some() {
        tx.execute(&format!("UPDATE {table} SET used = 1 WHERE hash = ?1"), [hash]).map_err(backend)?;
    }
    Ok(found)
}

/// Is `ancestor` equal to `node` or one of its ancestors?
fn is_within(c: &Connection, mut node: NodeId, ancestor: NodeId) -> StoreResult<bool> {
    loop {
        if node == ancestor {
            return Ok(true);
        }
        match must_node(c, node)?.parent_id {
            Some(p) => node = p,
            None => return Ok(false),
        }
    }
}

fn subtree(c: &Connection, root: NodeId) -> rusqlite::Result<Vec<Node>> {
    // Pre-order: a parent always comes before its children.
    let sql = format!(
        "WITH RECURSIVE sub(id, depth) AS (SELECT ?1, 0 UNION ALL \
         SELECT n.id, sub.depth + 1 FROM nodes n JOIN sub ON n.parent_id = sub.id) \
         SELECT {} FROM sub JOIN nodes n ON n.id = sub.id ORDER BY sub.depth",
        NODE_COLS.split(", ").map(|c| format!("n.{c}")).collect::<Vec<_>>().join(", ")
    );
    let mut stmt = c.prepare_cached(&sql)?;
    stmt.query_map([root], node_from_row)?.collect()
}

/// Inserts rows as they are, keys included (imports, snapshot restores).
fn insert_rows(tx: &Connection, table: &TableSpec, rows: Vec<Vec<Cell>>) -> StoreResult<()> {
    let marks = (1..=table.columns.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
    let sql = format!("INSERT INTO {}({}) VALUES ({marks})", table.name, table.column_list());
    let mut st = tx.prepare(&sql).map_err(backend)?;
    for row in rows {
        let values: Vec<rusqlite::types::Value> = row
            .into_iter()
            .map(|c| match c {
                Cell::Null => rusqlite::types::Value::Null,
                Cell::Int(n) => rusqlite::types::Value::Integer(n),
                Cell::Text(t) => rusqlite::types::Value::Text(t),
                Cell::Bytes(b) => rusqlite::types::Value::Blob(b),
            })
            .collect();
        st.execute(rusqlite::params_from_iter(values)).map_err(backend)?;
    }
    Ok(())
}

#[async_trait]
impl Accounts for Sqlite {
    async fn ensure_user(&self, name: &str) -> StoreResult<User> {
        let name = name.to_owned();
        self.write(move |tx, now| {
            let existing = tx
                .query_row("SELECT id, name, quota, used, disabled FROM users WHERE name = ?1", [&name], user_from_row)
                .optional()
                .map_err(backend)?;
            if let Some(u) = existing {
                return Ok(u);
            }
            tx.execute("INSERT INTO users(name, created) VALUES (?1, ?2)", params![name, now]).map_err(backend)?;
            let id = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO nodes(user_id, parent_id, name, is_dir, created, updated) VALUES (?1, NULL, '', 1, ?2, ?2)",
                params![id, now],
            )
            .map_err(backend)?;
            user_row(tx, id)
        })
        .await
    }

    async fn user(&self, id: i64) -> StoreResult<Option<User>> {
        self.quick(move |c| get_user(c, id))
    }

    async fn ensure_app(&self, name: &str, scopes: &str) -> StoreResult<App> {
        let (name, scopes) = (name.to_owned(), scopes.to_owned());
        self.write(move |tx, now| {
            let q = &format!("SELECT {APP_COLS} FROM apps WHERE name = ?1");
            if let Some(a) = tx.query_row(q, [&name], app_from_row).optional().map_err(backend)? {
                return Ok(a);
            }
            tx.execute(
                "INSERT INTO apps(name, client_id, scopes, created) VALUES (?1, ?1, ?3, ?2)",
                params![name, now, scopes],
            )
            .map_err(backend)?;
            tx.query_row(q, [&name], app_from_row).map_err(backend)
        })
        .await
    }

    async fn set_disabled(&self, app: bool, name: &str, disabled: bool) -> StoreResult<bool> {
        let name = name.to_owned();
        self.write(move |tx, _| {
            let sql = if app {
                "UPDATE apps SET disabled = ?2 WHERE name = ?1"
            } else {
                "UPDATE users SET disabled = ?2 WHERE name = ?1"
            };
            Ok(tx.execute(sql, params![name, disabled]).map_err(backend)? > 0)
        })
        .await
    }

    async fn app(&self, id: i64) -> StoreResult<Option<App>> {
        self.quick(move |c| get_app(c, id))
    }

    async fn create_user(&self, name: &str, password_hash: &str, quota: Option<u64>) -> StoreResult<User> {
        let (name, hash) = (name.to_owned(), password_hash.to_owned());
        self.write(move |tx, now| {
            let exists: Option<i64> =
                tx.query_row("SELECT id FROM users WHERE name = ?1", [&name], |r| r.get(0)).optional().map_err(backend)?;
            if exists.is_some() {
                return Err(StoreError::AlreadyExists(name));
            }
            tx.execute(
                "INSERT INTO users(name, password_hash, quota, created) VALUES (?1, ?2, ?3, ?4)",
                params![name, hash, quota.map(|q| q as i64), now],
            )
            .map_err(backend)?;
            let id = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO nodes(user_id, parent_id, name, is_dir, created, updated) VALUES (?1, NULL, '', 1, ?2, ?2)",
                params![id, now],
            )
            .map_err(backend)?;
            user_row(tx, id)
        })
        .await
    }

    async fn user_by_name(&self, name: &str) -> StoreResult<Option<(User, Option<String>)>> {
        let name = name.to_owned();
        self.quick(move |c| {
            c.query_row(
                "SELECT id, name, quota, used, disabled, password_hash FROM users WHERE name = ?1",
                [name],
                |r| Ok((user_from_row(r)?, r.get(5)?)),
            )
            .optional()
        })
    }

    async fn users(&self) -> StoreResult<Vec<User>> {
        self.read(|c| {
            c.prepare("SELECT id, name, quota, used, disabled FROM users ORDER BY name")?
                .query_map([], user_from_row)?
                .collect()
        })
        .await
    }

    async fn remove_user(&self, name: &str) -> StoreResult<Vec<String>> {
        let name = name.to_owned();
        self.write(move |tx, now| {
            let id: i64 = tx
                .query_row("SELECT id FROM users WHERE name = ?1", [&name], |r| r.get(0))
                .optional()
                .map_err(backend)?
                .ok_or_else(|| StoreError::NotFound(format!("user {name:?}")))?;
            let mut freed = Vec::new();
            let blobs: Vec<String> = tx
                .prepare("SELECT blob FROM nodes WHERE user_id = ?1 AND blob IS NOT NULL")
                .and_then(|mut s| s.query_map([id], |r| r.get(0))?.collect())
                .map_err(backend)?;
            for blob in blobs {
                if release_blob(tx, &blob, now)? {
                    freed.push(blob);
                }
            }
            for sql in [
                "DELETE FROM nodes WHERE user_id = ?1",
                "DELETE FROM tokens WHERE user_id = ?1",
                "DELETE FROM codes WHERE user_id = ?1",
                "DELETE FROM consents WHERE user_id = ?1",
                "DELETE FROM web_sessions WHERE user_id = ?1",
                "DELETE FROM sessions WHERE user_id = ?1",
                "DELETE FROM users WHERE id = ?1",
            ] {
                tx.execute(sql, [id]).map_err(backend)?;
            }
            Ok(freed)
        })
        .await
    }

    async fn create_app(&self, app: NewApp) -> StoreResult<App> {
        self.write(move |tx, now| {
            let taken: Option<i64> = tx
                .query_row("SELECT id FROM apps WHERE name = ?1 OR client_id = ?2", params![app.name, app.client_id], |r| r.get(0))
                .optional()
                .map_err(backend)?;
            if taken.is_some() {
                return Err(StoreError::AlreadyExists(app.name));
            }
            let uris = serde_json::to_string(&app.redirect_uris).map_err(backend)?;
            tx.execute(
                "INSERT INTO apps(name, client_id, secret_hash, redirect_uris, scopes, rate_limit, created) VALUES (?1,?2,?3,?4,?5,?6,?7)",
                params![app.name, app.client_id, app.secret_hash, uris, app.scopes, app.rate_limit, now],
            )
            .map_err(backend)?;
            tx.query_row(&format!("SELECT {APP_COLS} FROM apps WHERE id = ?1"), [tx.last_insert_rowid()], app_from_row)
                .map_err(backend)
        })
        .await
    }

    async fn app_by_client_id(&self, client_id: &str) -> StoreResult<Option<App>> {
        let client_id = client_id.to_owned();
        self.quick(move |c| {
            c.prepare_cached(&format!("SELECT {APP_COLS} FROM apps WHERE client_id = ?1"))?
                .query_row([client_id], app_from_row)
                .optional()
        })
    }

    async fn apps(&self) -> StoreResult<Vec<App>> {
        self.read(|c| {
            c.prepare(&format!("SELECT {APP_COLS} FROM apps ORDER BY name"))?.query_map([], app_from_row)?.collect()
        })
        .await
    }

    async fn remove_app(&self, name: &str) -> StoreResult<bool> {
        let name = name.to_owned();
        self.write(move |tx, _| {
            let Some(id): Option<i64> = tx
                .query_row("SELECT id FROM apps WHERE name = ?1", [&name], |r| r.get(0))
                .optional()
                .map_err(backend)?
            else {
                return Ok(false);
            };
            for sql in [
                "DELETE FROM tokens WHERE app_id = ?1",
                "DELETE FROM codes WHERE app_id = ?1",
                "DELETE FROM consents WHERE app_id = ?1",
                "DELETE FROM apps WHERE id = ?1",
            ] {
                tx.execute(sql, [id]).map_err(backend)?;
            }
            Ok(true)
        })
        .await
    }
}

#[async_trait]
impl Grants for Sqlite {
    async fn insert_code(&self, hash: &[u8], code: CodeRecord) -> StoreResult<()> {
        let hash = hash.to_vec();
        self.write(move |tx, _| {
            tx.execute(
                "INSERT INTO codes(hash, app_id, user_id, redirect_uri, scope, code_challenge, expires_at) VALUES (?1,?2,?3,?4,?5,?6,?7)",
                params![hash, code.app_id, code.user_id, code.redirect_uri, code.scope, code.code_challenge, code.expires_at],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn take_code(&self, hash: &[u8]) -> StoreResult<Option<(CodeRecord, bool)>> {
        let hash = hash.to_vec();
        self.write(move |tx, _| {
            take_once(tx, "codes", "app_id, user_id, redirect_uri, scope, code_challenge, expires_at", &hash, |r| {
                Ok(CodeRecord {
                    app_id: r.get(0)?,
                    user_id: r.get(1)?,
                    redirect_uri: r.get(2)?,
                    scope: r.get(3)?,
                    code_challenge: r.get(4)?,
                    expires_at: r.get(5)?,
                })
            })
        })
        .await
    }

    async fn consent(&self, user_id: i64, app_id: i64) -> StoreResult<Option<String>> {
        self.quick(move |c| {
            c.prepare_cached("SELECT scope FROM consents WHERE user_id = ?1 AND app_id = ?2")?
                .query_row([user_id, app_id], |r| r.get(0))
                .optional()
        })
    }

    async fn merge_consent(&self, user_id: i64, app_id: i64, scopes: &[String]) -> StoreResult<()> {
        let scopes = scopes.to_vec();
        self.write(move |tx, _| {
            let granted: Option<String> = tx
                .query_row("SELECT scope FROM consents WHERE user_id = ?1 AND app_id = ?2", [user_id, app_id], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(backend)?;
            let scope = super::merge_scopes(granted.as_deref().unwrap_or(""), &scopes);
            tx.execute(
                "INSERT INTO consents(user_id, app_id, scope) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(user_id, app_id) DO UPDATE SET scope = excluded.scope",
                params![user_id, app_id, scope],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn insert_web_session(&self, hash: &[u8], session: WebSession) -> StoreResult<()> {
        let hash = hash.to_vec();
        self.write(move |tx, _| {
            tx.execute(
                "INSERT INTO web_sessions(hash, user_id, csrf, expires_at) VALUES (?1, ?2, ?3, ?4)",
                params![hash, session.user_id, session.csrf, session.expires_at],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn web_session(&self, hash: &[u8]) -> StoreResult<Option<WebSession>> {
        let hash = hash.to_vec();
        self.quick(move |c| {
            c.prepare_cached("SELECT user_id, csrf, expires_at FROM web_sessions WHERE hash = ?1")?
                .query_row([hash], |r| Ok(WebSession { user_id: r.get(0)?, csrf: r.get(1)?, expires_at: r.get(2)? }))
                .optional()
        })
    }

    async fn delete_web_session(&self, hash: &[u8]) -> StoreResult<()> {
        let hash = hash.to_vec();
        self.write(move |tx, _| {
            tx.execute("DELETE FROM web_sessions WHERE hash = ?1", [hash]).map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn revoke_token(&self, hash: &[u8], app_id: i64, whole_grant: bool) -> StoreResult<bool> {
        let hash = hash.to_vec();
        self.write(move |tx, _| {
            let found: Option<(String, String)> = tx
                .query_row(
                    "SELECT kind, grant_id FROM tokens WHERE hash = ?1 AND app_id = ?2",
                    params![hash, app_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(backend)?;
            let Some((kind, grant)) = found else {
                return Ok(false);
            };
            tx.execute("UPDATE tokens SET revoked = 1 WHERE hash = ?1", [&hash]).map_err(backend)?;
            if whole_grant && kind == "refresh" && !grant.is_empty() {
                tx.execute("UPDATE tokens SET revoked = 1 WHERE grant_id = ?1", [&grant]).map_err(backend)?;
            }
            Ok(true)
        })
        .await
    }

    async fn insert_upload_url(&self, hash: &[u8], u: UploadUrl) -> StoreResult<()> {
        let hash = hash.to_vec();
        self.write(move |tx, _| {
            tx.execute(
                "INSERT INTO upload_urls(hash, cookie_hash, user_id, app_id, scope, name, size, expires_at) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
                params![hash, u.cookie_hash, u.user_id, u.app_id, u.scope, u.name, u.size as i64, u.expires_at],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn take_upload_url(&self, hash: &[u8], cookie_hash: &[u8]) -> StoreResult<Option<(UploadUrl, bool)>> {
        let (hash, cookie_hash) = (hash.to_vec(), cookie_hash.to_vec());
        self.write(move |tx, _| {
            let found = tx
                .query_row(
                    "SELECT cookie_hash, user_id, app_id, scope, name, size, expires_at, used FROM upload_urls \
                     WHERE hash = ?1 AND cookie_hash = ?2",
                    params![hash, cookie_hash],
                    |r| {
                        let url = UploadUrl {
                            cookie_hash: r.get(0)?,
                            user_id: r.get(1)?,
                            app_id: r.get(2)?,
                            scope: r.get(3)?,
                            name: r.get(4)?,
                            size: r.get::<_, i64>(5)? as u64,
                            expires_at: r.get(6)?,
                        };
                        Ok((url, r.get::<_, bool>(7)?))
                    },
                )
                .optional()
                .map_err(backend)?;
            if found.is_some() {
                tx.execute("UPDATE upload_urls SET used = 1 WHERE hash = ?1", [&hash]).map_err(backend)?;
            }
            Ok(found)
        })
        .await
    }

    async fn purge_expired(&self, now: i64, tokens_before: i64) -> StoreResult<usize> {
        self.write(move |tx, _| {
            let mut n = 0;
            for table in ["codes", "upload_urls", "web_sessions", "sessions"] {
                n += tx.execute(&format!("DELETE FROM {table} WHERE expires_at < ?1"), [now]).map_err(backend)?;
            }
            n += tx.execute("DELETE FROM tokens WHERE expires_at < ?1", [tokens_before]).map_err(backend)?;
            Ok(n)
        })
        .await
    }

    async fn revoke_grant(&self, grant: &str) -> StoreResult<()> {
        let grant = grant.to_owned();
        self.write(move |tx, _| {
            tx.execute("UPDATE tokens SET revoked = 1 WHERE grant_id = ?1", [grant]).map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn consents_of(&self, user_id: i64) -> StoreResult<Vec<(i64, String)>> {
        self.quick(move |c| {
            let mut st = c.prepare_cached("SELECT app_id, scope FROM consents WHERE user_id = ?1 ORDER BY app_id")?;
            st.query_map([user_id], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
        })
    }

    async fn forget_access(&self, user_id: i64, app_id: i64) -> StoreResult<bool> {
        self.write(move |tx, _| {
            let consents = tx
                .execute("DELETE FROM consents WHERE user_id = ?1 AND app_id = ?2", [user_id, app_id])
                .map_err(backend)?;
            let tokens = tx
                .execute(
                    "UPDATE tokens SET revoked = 1 WHERE user_id = ?1 AND app_id = ?2 AND revoked = 0",
                    [user_id, app_id],
                )
                .map_err(backend)?;
            Ok(consents + tokens > 0)
        })
        .await
    }

    async fn insert_tokens(&self, tokens: Vec<NewToken>) -> StoreResult<()> {
        self.write(move |tx, _| {
            for token in tokens {
                let r = &token.record;
                tx.execute(
                    "INSERT INTO tokens(hash, kind, user_id, app_id, scope, expires_at, revoked, grant_id) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
                    params![token.hash, r.kind, r.user_id, r.app_id, r.scope, r.expires_at, r.revoked, r.grant],
                )
                .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn token(&self, hash: &[u8]) -> StoreResult<Option<TokenRecord>> {
        let hash = hash.to_vec();
        self.quick(move |c| get_token(c, &hash))
    }

    async fn token_access(&self, hash: &[u8]) -> StoreResult<Option<TokenAccess>> {
        let hash = hash.to_vec();
        self.quick(move |c| {
            // One read transaction: one snapshot, one lock and page-cache check.
            read_tx(c, |c| {
                let Some(token) = get_token(c, &hash)? else { return Ok(None) };
                let user = get_user(c, token.user_id)?;
                let app = get_app(c, token.app_id)?;
                Ok(Some(TokenAccess { token, user, app }))
            })
        })
    }

    async fn set_token(&self, hash: &[u8], expires_at: Option<i64>, revoke: bool) -> StoreResult<bool> {
        let hash = hash.to_vec();
        self.write(move |tx, _| {
            let n = tx
                .execute(
                    "UPDATE tokens SET expires_at = COALESCE(?2, expires_at), revoked = revoked OR ?3 WHERE hash = ?1",
                    params![hash, expires_at, revoke],
                )
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn insert_session(&self, esid: &str, user_id: i64, expires_at: i64) -> StoreResult<()> {
        let esid = esid.to_owned();
        self.write(move |tx, _| {
            tx.execute(
                "INSERT INTO sessions(esid, user_id, expires_at) VALUES (?1, ?2, ?3)",
                params![esid, user_id, expires_at],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl Tree for Sqlite {
    async fn root(&self, user_id: i64) -> StoreResult<Node> {
        self.quick(move |c| {
            c.prepare_cached(&format!("SELECT {NODE_COLS} FROM nodes WHERE user_id = ?1 AND parent_id IS NULL"))?
                .query_row([user_id], node_from_row)
                .optional()
        })?
        .ok_or_else(|| StoreError::NotFound(format!("root of user {user_id}")))
    }

    async fn node(&self, id: NodeId) -> StoreResult<Option<Node>> {
        self.quick(move |c| get_node(c, id))
    }

    async fn walk(&self, start: NodeId, names: &[String]) -> StoreResult<Option<Node>> {
        let names = names.to_vec();
        self.quick(move |c| {
            // One read transaction for every step: one snapshot, and one lock and page-cache
            // check instead of one per statement (after any commit, each of those re-reads
            // its pages).
            read_tx(c, |c| {
                let mut cur = match get_node(c, start)? {
                    Some(n) => n,
                    None => return Ok(None),
                };
                for name in &names {
                    if !cur.is_dir {
                        return Ok(None);
                    }
                    match child(c, cur.id, name)? {
                        Some(n) => cur = n,
                        None => return Ok(None),
                    }
                }
                Ok(Some(cur))
            })
        })
    }

    async fn ensure_folders(&self, start: NodeId, names: &[String]) -> StoreResult<Node> {
        // Nearly always the folders exist (the app folder on every call without a folder id):
        // a read finds them without taking the writer lock.
        if let Some(n) = self.walk(start, names).await?
            && n.is_dir
        {
            return Ok(n);
        }
        let names = names.to_vec();
        self.write(move |tx, now| {
            let mut cur = must_node(tx, start)?;
            for name in &names {
                cur = match child(tx, cur.id, name).map_err(backend)? {
                    Some(n) if n.is_dir => n,
                    Some(_) => return Err(StoreError::AlreadyExists(name.clone())),
                    None => insert_folder(tx, cur.user_id, cur.id, name, now)?,
                };
            }
            Ok(cur)
        })
        .await
    }

    async fn children(&self, parent: NodeId, q: ChildQuery) -> StoreResult<Vec<Node>> {
        // A page or a small folder is a short read, done in place; a big folder (over 1,000
        // entries asked) goes to the blocking pool.
        const IN_PLACE: u64 = 1000;
        // Below this offset a plain OFFSET skips few index entries: no checkpoints needed.
        const DEEP: u64 = 1000;
        if q.offset >= DEEP && q.dirs && q.files && q.file_type.is_none() && q.limit.is_some_and(|l| l <= IN_PLACE) {
            return self.deep_page(parent, q).await;
        }
        if q.limit.is_some_and(|l| l <= IN_PLACE) {
            return self.quick(|c| list_children(c, parent, q));
        }
        let first = self.quick(|c| list_children(c, parent, ChildQuery { limit: Some(IN_PLACE + 1), ..q }))?;
        if first.len() as u64 <= IN_PLACE {
            return Ok(first);
        }
        self.read(move |c| list_children(c, parent, q)).await
    }

    async fn descendants(&self, folder: NodeId, dirs_only: bool) -> StoreResult<Vec<Descendant>> {
        self.read(move |c| {
            let only = if dirs_only { " AND n.is_dir = 1" } else { "" };
            let base_only = if dirs_only { " AND is_dir = 1" } else { "" };
            let sql = format!(
                "WITH RECURSIVE sub(id, name, is_dir, rel) AS ( \
                   SELECT id, name, is_dir, '' FROM nodes WHERE parent_id = ?1{base_only} \
                   UNION ALL \
                   SELECT n.id, n.name, n.is_dir, sub.rel || sub.name || '/' FROM nodes n \
                     JOIN sub ON n.parent_id = sub.id WHERE sub.is_dir = 1{only}) \
                 SELECT {}, sub.rel FROM sub JOIN nodes n ON n.id = sub.id ORDER BY sub.rel || sub.name",
                NODE_COLS.split(", ").map(|c| format!("n.{c}")).collect::<Vec<_>>().join(", ")
            );
            let mut stmt = c.prepare_cached(&sql)?;
            stmt.query_map([folder], |r| Ok(Descendant { node: node_from_row(r)?, parent_rel: r.get(12)? }))?.collect()
        })
        .await
    }

    async fn create_folder(&self, parent: NodeId, name: &str) -> StoreResult<Node> {
        let name = name.to_owned();
        self.write(move |tx, now| {
            let p = must_node(tx, parent)?;
            if !p.is_dir {
                return Err(StoreError::NotFound(format!("folder {parent}")));
            }
            insert_folder(tx, p.user_id, parent, &name, now)
        })
        .await
    }

    async fn insert_file(&self, parent: NodeId, file: NewFile, quota: u64) -> StoreResult<Node> {
        self.write(move |tx, now| {
            let p = must_node(tx, parent)?;
            if !p.is_dir {
                return Err(StoreError::NotFound(format!("folder {parent}")));
            }
            charge(tx, p.user_id, file.size, quota)?;
            let id = insert_file_row(tx, &p, &file, now)?;
            must_node(tx, id)
        })
        .await
    }

    async fn insert_files(&self, parent: NodeId, files: Vec<NewFile>, quota: u64) -> StoreResult<usize> {
        self.write(move |tx, now| {
            let p = must_node(tx, parent)?;
            if !p.is_dir {
                return Err(StoreError::NotFound(format!("folder {parent}")));
            }
            charge(tx, p.user_id, files.iter().map(|f| f.size).sum(), quota)?;
            for f in &files {
                insert_file_row(tx, &p, f, now)?;
            }
            Ok(files.len())
        })
        .await
    }

    async fn relocate(&self, node: NodeId, parent: NodeId, name: &str) -> StoreResult<Node> {
        let name = name.to_owned();
        self.write(move |tx, now| {
            let n = must_node(tx, node)?;
            let p = must_node(tx, parent)?;
            if !p.is_dir || p.user_id != n.user_id {
                return Err(StoreError::NotFound(format!("folder {parent}")));
            }
            if n.is_dir && is_within(tx, parent, node)? {
                return Err(StoreError::IntoItself);
            }
            if n.parent_id == Some(parent) && n.name == name {
                return Ok(n);
            }
            if child(tx, parent, &name).map_err(backend)?.is_some() {
                return Err(StoreError::AlreadyExists(name));
            }
            tx.execute(
                "UPDATE nodes SET parent_id = ?2, name = ?3, updated = ?4 WHERE id = ?1",
                params![node, parent, name, now],
            )
            .map_err(backend)?;
            must_node(tx, node)
        })
        .await
    }

    async fn copy(&self, node: NodeId, parent: NodeId, name: &str, quota: u64) -> StoreResult<Node> {
        let name = name.to_owned();
        self.write(move |tx, now| {
            let p = must_node(tx, parent)?;
            let src = must_node(tx, node)?;
            if !p.is_dir || p.user_id != src.user_id {
                return Err(StoreError::NotFound(format!("folder {parent}")));
            }
            if src.is_dir && is_within(tx, parent, node)? {
                return Err(StoreError::IntoItself);
            }
            if child(tx, parent, &name).map_err(backend)?.is_some() {
                return Err(StoreError::AlreadyExists(name));
            }
            let items = subtree(tx, node).map_err(backend)?;
            let bytes: u64 = items.iter().filter(|n| !n.is_dir).map(|n| n.size).sum();
            charge(tx, src.user_id, bytes, quota)?;
            let mut new_ids = std::collections::HashMap::new();
            for item in &items {
                let (new_parent, new_name) = if item.id == node {
                    (parent, name.as_str())
                } else {
                    let old_parent = item.parent_id.expect("subtree member has a parent");
                    (new_ids[&old_parent], item.name.as_str())
                };
                tx.execute(
                    "INSERT INTO nodes(user_id, parent_id, name, is_dir, size, blob, file_type, mime, metadata, created, updated) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
                    params![item.user_id, new_parent, new_name, item.is_dir, item.size as i64, item.blob,
                        item.file_type.map(type_name), item.mime, item.metadata, now],
                )
                .map_err(backend)?;
                new_ids.insert(item.id, tx.last_insert_rowid());
                if let Some(blob) = &item.blob {
                    tx.execute("UPDATE blobs SET refs = refs + 1 WHERE key = ?1", [blob]).map_err(backend)?;
                }
            }
            must_node(tx, new_ids[&node])
        })
        .await
    }

    async fn delete(&self, node: NodeId) -> StoreResult<Vec<String>> {
        self.write(move |tx, now| {
            let items = subtree(tx, node).map_err(backend)?;
            let Some(first) = items.first() else {
                return Err(StoreError::NotFound(format!("node {node}")));
            };
            let user_id = first.user_id;
            let bytes: u64 = items.iter().filter(|n| !n.is_dir).map(|n| n.size).sum();
            let mut freed = Vec::new();
            for item in items.iter().rev() {
                tx.execute("DELETE FROM nodes WHERE id = ?1", [item.id]).map_err(backend)?;
                if let Some(blob) = &item.blob
                    && release_blob(tx, blob, now)?
                {
                    freed.push(blob.clone());
                }
            }
            tx.execute("UPDATE users SET used = MAX(0, used - ?2) WHERE id = ?1", params![user_id, bytes as i64])
                .map_err(backend)?;
            Ok(freed)
        })
        .await
    }

    async fn set_blob_metadata(&self, blob: &str, metadata: &str) -> StoreResult<usize> {
        let (blob, metadata) = (blob.to_owned(), metadata.to_owned());
        self.write(move |tx, _| {
            tx.execute("UPDATE nodes SET metadata = ?2 WHERE blob = ?1", params![blob, metadata]).map_err(backend)
        })
        .await
    }
}

#[async_trait]
impl Housekeeping for Sqlite {
    async fn generation(&self) -> StoreResult<u64> {
        // Two kinds of value, kept apart by the top bit: a fingerprint of the WAL index's
        // header (no lock), or, when it cannot be read (not mapped, a commit writing it),
        // SQLite's data version (a read transaction). Either changes on every commit.
        const ASKED: u64 = 1 << 63;
        if let Some(f) = self.wal.as_ref().and_then(|w| w.fingerprint()) {
            return Ok(f & !ASKED);
        }
        let c = self.watcher.lock().unwrap_or_else(|p| p.into_inner());
        c.prepare_cached("PRAGMA data_version")
            .and_then(|mut st| st.query_row([], |r| r.get::<_, i64>(0)))
            .map(|v| v as u64 | ASKED)
            .map_err(backend)
    }

    async fn secret(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>> {
        let (name, candidate) = (name.to_owned(), candidate.to_vec());
        self.write(move |tx, _| {
            tx.execute("INSERT OR IGNORE INTO secrets(name, value) VALUES (?1, ?2)", params![name, candidate])
                .map_err(backend)?;
            tx.query_row("SELECT value FROM secrets WHERE name = ?1", [&name], |r| r.get(0)).map_err(backend)
        })
        .await
    }

    async fn reset(&self, keep_accounts: bool, now: i64) -> StoreResult<Vec<String>> {
        self.write(move |tx, _| {
            let keys: Vec<String> = tx
                .prepare("UPDATE blobs SET refs = 0, since = ?1 WHERE refs > 0 RETURNING key")
                .and_then(|mut st| st.query_map([now], |r| r.get(0))?.collect())
                .map_err(backend)?;
            let statements = if keep_accounts { RESET_FILES } else { RESET_ALL };
            for sql in statements {
                tx.execute(sql, []).map_err(backend)?;
            }
            Ok(keys)
        })
        .await
    }

    async fn lease(&self, name: &str, holder: &str, until: i64, now: i64) -> StoreResult<bool> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.write(move |tx, _| {
            let got: Option<String> = tx
                .query_row(
                    "INSERT INTO leases(name, holder, until) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
                 WHERE leases.until <= ?4 RETURNING holder",
                    params![name, holder, until, now],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            Ok(got.is_some())
        })
        .await
    }

    async fn check(&self) -> StoreResult<()> {
        self.quick(|c| c.query_row("SELECT 1", [], |_| Ok(())))
    }

    async fn claim_blobs(&self, keys: &[String], now: i64) -> StoreResult<()> {
        let keys = keys.to_vec();
        self.write(move |tx, _| {
            let mut st =
                tx.prepare_cached("INSERT INTO blobs(key, refs, since) VALUES (?1, 0, ?2)").map_err(backend)?;
            for key in keys {
                st.execute(params![key, now]).map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn forget_blobs(&self, keys: &[String]) -> StoreResult<()> {
        let keys = keys.to_vec();
        self.write(move |tx, _| {
            let mut st = tx.prepare_cached("DELETE FROM blobs WHERE key = ?1 AND refs <= 0").map_err(backend)?;
            for k in keys {
                st.execute([k]).map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn reap_blobs(&self, before: i64, limit: usize) -> StoreResult<Vec<String>> {
        self.write(move |tx, _| {
            tx.prepare_cached(
                "UPDATE blobs SET reaping = 1 WHERE key IN \
                 (SELECT key FROM blobs WHERE refs <= 0 AND since < ?1 ORDER BY since LIMIT ?2) RETURNING key",
            )
            .and_then(|mut st| st.query_map(params![before, limit as i64], |r| r.get(0))?.collect())
            .map_err(backend)
        })
        .await
    }

    async fn pending_blobs(&self, keys: &[String]) -> StoreResult<std::collections::HashSet<String>> {
        let keys = keys.to_vec();
        self.read(move |c| {
            let mut st = c.prepare_cached("SELECT key FROM blobs WHERE key = ?1 AND refs <= 0")?;
            let mut out = std::collections::HashSet::new();
            for k in keys {
                if let Some(k) = st.query_row([k], |r| r.get(0)).optional()? {
                    out.insert(k);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn file_blobs(&self, after: Option<&str>, limit: usize) -> StoreResult<Vec<(String, u64)>> {
        let after = after.unwrap_or("").to_owned();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT blob, MAX(size) FROM nodes WHERE blob IS NOT NULL AND blob > ?1 \
                 GROUP BY blob ORDER BY blob LIMIT ?2",
            )?
            .query_map(params![after, limit as i64], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?
            .collect()
        })
        .await
    }

    async fn export_rows(&self, table: &'static TableSpec, offset: u64, limit: usize) -> StoreResult<Vec<Vec<Cell>>> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {} FROM {} ORDER BY {} LIMIT ?1 OFFSET ?2",
                table.column_list(),
                table.name,
                table.key_list()
            );
            let mut st = c.prepare(&sql)?;
            let mut rows = st.query(params![limit as i64, offset as i64])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                let mut row = Vec::with_capacity(table.columns.len());
                for (i, (_, kind)) in table.columns.iter().enumerate() {
                    row.push(match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => Cell::Null,
                        rusqlite::types::ValueRef::Integer(n) => Cell::Int(n),
                        rusqlite::types::ValueRef::Real(f) => Cell::Int(f as i64),
                        rusqlite::types::ValueRef::Text(t) if *kind == Kind::Bytes => Cell::Bytes(t.to_vec()),
                        rusqlite::types::ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
                        rusqlite::types::ValueRef::Blob(b) => Cell::Bytes(b.to_vec()),
                    });
                }
                out.push(row);
            }
            Ok(out)
        })
        .await
    }

    async fn import_rows(&self, table: &'static TableSpec, rows: Vec<Vec<Cell>>) -> StoreResult<()> {
        self.write(move |tx, _| insert_rows(tx, table, rows)).await
    }

    async fn replace_all(&self, tables: Vec<(&'static TableSpec, Vec<Vec<Cell>>)>) -> StoreResult<()> {
        self.write(move |tx, _| {
            for (table, rows) in tables {
                tx.execute(&format!("DELETE FROM {}", table.name), []).map_err(backend)?;
                insert_rows(tx, table, rows)?;
            }
            Ok(())
        })
        .await
    }

    async fn usage_mismatches(&self) -> StoreResult<Vec<(String, u64, u64)>> {
        self.read(|c| {
            c.prepare(
                "SELECT u.name, u.used, COALESCE((SELECT SUM(size) FROM nodes n WHERE n.user_id = u.id AND n.is_dir = 0), 0) AS s \
                 FROM users u WHERE u.used != s ORDER BY u.name",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)? as u64)))?
            .collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_metadata_contract_holds() {
        let dir = tempfile::tempdir().unwrap();
        let db = Sqlite::open(&dir.path().join("m.db"), Clock::system()).unwrap();
        crate::store::conformance::run(&db).await;
    }

    /// Waits (yielding, never sleeping) until `done` holds.
    async fn until(done: impl Fn() -> bool) {
        while !done() {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn waiting_writes_share_one_commit_and_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = Sqlite::open(&dir.path().join("m.db"), Clock::system()).unwrap();
        let u = db.ensure_user("u").await.unwrap();
        let root = db.root(u.id).await.unwrap();
        db.create_folder(root.id, "taken").await.unwrap();
        // Hold the writer busy so the next writes queue up behind it.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let before = db.stats.batches.load(Ordering::Relaxed);
        let blocker = tokio::spawn({
            let db = db.clone();
            async move { db.write(move |_, _| Ok(held.recv().ok())).await }
        });
        until(|| db.stats.batches.load(Ordering::Relaxed) == before + 1).await;
        let mut writes = Vec::new();
        for i in 0..40 {
            let db = db.clone();
            let name = if i == 17 { "taken".to_owned() } else { format!("f{i:02}") };
            writes.push(tokio::spawn(async move { db.create_folder(root.id, &name).await }));
        }
        until(|| db.stats.queued.load(Ordering::Relaxed) == 40).await;
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        let mut failed = Vec::new();
        for (i, w) in writes.into_iter().enumerate() {
            if let Err(e) = w.await.unwrap() {
                failed.push((i, e.to_string()));
            }
        }
        assert_eq!(failed, [(17, "an item named \"taken\" already exists there".to_owned())]);
        // The 40 writes took one transaction, and the failed one took nothing else down.
        assert_eq!(db.stats.batches.load(Ordering::Relaxed), before + 2);
        let q = ChildQuery { dirs: true, files: true, file_type: None, offset: 0, limit: None };
        assert_eq!(db.children(root.id, q).await.unwrap().len(), 40);
    }

    #[tokio::test]
    async fn a_panicking_write_fails_alone_and_the_writer_lives_on() {
        let dir = tempfile::tempdir().unwrap();
        let db = Sqlite::open(&dir.path().join("m.db"), Clock::system()).unwrap();
        let u = db.ensure_user("u").await.unwrap();
        let root = db.root(u.id).await.unwrap();
        let boom = db
            .write(move |c, now| -> StoreResult<()> {
                insert_folder(c, u.id, root.id, "half-done", now)?;
                panic!("a bug in a write")
            })
            .await;
        assert!(matches!(boom, Err(StoreError::Backend(_))), "{boom:?}");
        db.create_folder(root.id, "after").await.unwrap();
        let q = ChildQuery { dirs: true, files: true, file_type: None, offset: 0, limit: None };
        let names: Vec<String> = db.children(root.id, q).await.unwrap().into_iter().map(|n| n.name).collect();
        assert_eq!(names, ["after"]);
    }

    #[tokio::test]
    async fn deep_pages_match_plain_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let db = Sqlite::open(&dir.path().join("m.db"), Clock::system()).unwrap();
        let u = db.ensure_user("u").await.unwrap();
        let root = db.root(u.id).await.unwrap();
        let big = db.create_folder(root.id, "big").await.unwrap();
        for i in 0..1500 {
            db.create_folder(big.id, &format!("d{i:05}")).await.unwrap();
        }
        let files = (0..2600)
            .map(|i| NewFile {
                name: format!("f{i:05}"),
                size: 1,
                blob: "b".into(),
                file_type: FileType::File,
                mime: "x".into(),
                metadata: None,
            })
            .collect();
        db.claim_blobs(&["b".into()], 0).await.unwrap();
        db.insert_files(big.id, files, u64::MAX).await.unwrap();
        for offset in [999, 1000, 1001, 1450, 1499, 1500, 1501, 2000, 2999, 3000, 4050, 4099, 4100, 5000] {
            let q = ChildQuery { dirs: true, files: true, file_type: None, offset, limit: Some(100) };
            let fast: Vec<String> = db.children(big.id, q).await.unwrap().into_iter().map(|n| n.name).collect();
            let plain: Vec<String> =
                db.quick(|c| list_children(c, big.id, q)).unwrap().into_iter().map(|n| n.name).collect();
            assert_eq!(fast, plain, "offset {offset}");
        }
        // After a change, the checkpoints are rebuilt.
        db.create_folder(big.id, "a-first").await.unwrap();
        let q = ChildQuery { dirs: true, files: true, file_type: None, offset: 1500, limit: Some(3) };
        let fast: Vec<String> = db.children(big.id, q).await.unwrap().into_iter().map(|n| n.name).collect();
        assert_eq!(fast, ["d01499", "f00000", "f00001"]);
    }
    #[tokio::test]
    async fn the_generation_changes_with_every_commit_of_any_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let (a, b) = (Sqlite::open(&path, Clock::system()).unwrap(), Sqlite::open(&path, Clock::system()).unwrap());
        // Another connection, as the admin CLI's in another process.
        let other = connect(&path).unwrap();
        assert!(b.wal.is_some(), "the WAL index is mapped: the generation is read without a lock");
        let u = a.ensure_user("alice").await.unwrap();
        let root = a.root(u.id).await.unwrap();
        let mut seen = vec![b.generation().await.unwrap()];
        for i in 0..10 {
            match i % 3 {
                0 => drop(a.create_folder(root.id, &format!("a{i}")).await.unwrap()),
                1 => drop(b.create_folder(root.id, &format!("b{i}")).await.unwrap()),
                _ => drop(other.execute("UPDATE users SET used = used + 1", []).unwrap()),
            }
            let g = b.generation().await.unwrap();
            assert!(!seen.contains(&g), "write {i} went unseen");
            assert_eq!(a.generation().await.unwrap(), g, "both instances see the same");
            assert_eq!(b.generation().await.unwrap(), g, "stable while nothing commits");
            seen.push(g);
        }
    }
}
