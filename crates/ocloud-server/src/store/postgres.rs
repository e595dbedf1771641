//! The PostgreSQL metadata backend, for several stateless instances on one database.
//!
//! - **Serialisable trees**: every change to a user's tree runs in a transaction that first
//!   takes `pg_advisory_xact_lock(user id)`, so quota, clash renaming, move-into-itself and
//!   name-taken checks see the latest committed tree, whichever instance runs them; the lock
//!   goes with the transaction (a killed instance never leaves it held).
//! - **Single-step records**: a code or an upload URL is taken with `SELECT … FOR UPDATE`, a
//!   user or a secret created with `ON CONFLICT`, so two instances never both win.
//! - **Coherent caches**: after each commit that changes anything the `generation` sequence is
//!   bumped; [`Housekeeping::generation`] reads it, so a cache on any instance sees a change
//!   made on another at its next request (a sequence is read outside transactions and never
//!   blocks writers).
//! - **Time** comes from the injected clock; no column defaults to `now()`.
//! - A lost connection or an unreachable server is [`StoreError::Unavailable`] (503/5); the
//!   pool opens new connections when the server is back.

use std::collections::HashSet;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime, Transaction};
use tokio_postgres::{NoTls, Row};

use super::*;
use crate::clock::Clock;

/// Advisory-lock key of schema migrations (user locks use user ids, which are positive).
const MIGRATION_LOCK: i64 = -0x6f63_6c6f_7564;

const NODE_COLS: &str = "id, user_id, parent_id, name, is_dir, size, blob, file_type, mime, metadata, created, updated";
const APP_COLS: &str = "id, name, client_id, disabled, secret_hash, redirect_uris, scopes, rate_limit";
const USER_COLS: &str = "id, name, quota, used, disabled";

/// The PostgreSQL backend. Cheap to clone.
#[derive(Clone)]
pub struct Postgres {
    pool: Pool,
    clock: Clock,
    files: std::sync::Arc<std::sync::Mutex<FileQueues>>,
}

/// Most file records committed by one transaction.
/// 64: past that many subtransactions (a savepoint each) a PostgreSQL backend's cache of
/// them overflows, which slows every snapshot of the cluster.
const MAX_FILE_BATCH: usize = 64;

/// Per folder, the file records waiting for its next batch (group commit, as in the SQLite
/// store: uploads of one user otherwise queue on that user's lock for one commit each). A
/// folder has an entry exactly while a task commits its batches. Queues are per folder, so a
/// folder whose owner is busy (a long move holds the user's lock) delays only its own.
type FileQueues = std::collections::HashMap<NodeId, Vec<FileJob>>;

/// One [`Tree::insert_file`] waiting for its folder's batch.
struct FileJob {
    file: NewFile,
    quota: u64,
    answer: tokio::sync::oneshot::Sender<StoreResult<Node>>,
}

fn pg(e: tokio_postgres::Error) -> StoreError {
    match e.code() {
        // disk_full, insufficient_resources' out-of-space family
        Some(c) if c.code() == "53100" => StoreError::Full(e.to_string()),
        // admin shutdown, cannot connect now, too many connections
        Some(c) if ["57P01", "57P02", "57P03", "53300"].contains(&c.code()) => StoreError::Unavailable(e.to_string()),
        Some(_) => StoreError::Backend(format!("{e}: {}", e.as_db_error().map(|d| d.message()).unwrap_or(""))),
        // No SQLSTATE: the connection failed or closed.
        None => StoreError::Unavailable(e.to_string()),
    }
}

fn node(r: &Row) -> Node {
    Node {
        id: r.get(0),
        user_id: r.get(1),
        parent_id: r.get(2),
        name: r.get(3),
        is_dir: r.get(4),
        size: r.get::<_, i64>(5) as u64,
        blob: r.get(6),
        file_type: r.get::<_, Option<String>>(7).as_deref().map(type_from),
        mime: r.get(8),
        metadata: r.get(9),
        created: r.get(10),
        updated: r.get(11),
    }
}

fn user(r: &Row) -> User {
    User {
        id: r.get(0),
        name: r.get(1),
        quota: r.get::<_, Option<i64>>(2).map(|q| q as u64),
        used: r.get::<_, i64>(3) as u64,
        disabled: r.get(4),
    }
}

const TOKEN_SQL: &str =
    "SELECT kind, user_id, app_id, scope, expires_at, revoked, grant_id FROM tokens WHERE hash = $1";

fn token_record(r: &Row) -> TokenRecord {
    TokenRecord {
        kind: r.get(0),
        user_id: r.get(1),
        app_id: r.get(2),
        scope: r.get(3),
        expires_at: r.get(4),
        revoked: r.get(5),
        grant: r.get(6),
    }
}

fn app(r: &Row) -> App {
    let uris: String = r.get(5);
    App {
        id: r.get(0),
        name: r.get(1),
        client_id: r.get(2),
        disabled: r.get(3),
        secret_hash: r.get(4),
        redirect_uris: serde_json::from_str(&uris).unwrap_or_default(),
        scopes: r.get(6),
        rate_limit: r.get::<_, Option<i32>>(7).map(|l| l as u32),
    }
}

impl Postgres {
    /// Connects to `postgres://…` and brings the schema up to date.
    pub async fn connect(url: &str, clock: Clock) -> anyhow::Result<Postgres> {
        let cfg: tokio_postgres::Config = url.parse()?;
        let mgr = Manager::from_config(cfg, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let timeout = Some(std::time::Duration::from_secs(5));
        let pool = Pool::builder(mgr)
            .max_size(16)
            .runtime(Runtime::Tokio1)
            .wait_timeout(timeout)
            .create_timeout(timeout)
            .recycle_timeout(timeout)
            .build()?;
        let db = Postgres { pool, clock, files: Default::default() };
        db.migrate().await?;
        Ok(db)
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        // Instances starting together: one migrates, the others wait and find it done.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version(version BIGINT NOT NULL)").await?;
        let version: i64 =
            tx.query_opt("SELECT version FROM schema_version", &[]).await?.map(|r| r.get(0)).unwrap_or(0);
        let todo = super::migrations::pending(super::migrations::POSTGRES, version, "PostgreSQL database")?;
        for (i, script) in todo.iter().enumerate() {
            tx.batch_execute(script)
                .await
                .map_err(|e| anyhow::anyhow!("migration {}: {e}: {:?}", version + 1 + i as i64, e.as_db_error()))?;
        }
        tx.execute("DELETE FROM schema_version", &[]).await?;
        tx.execute("INSERT INTO schema_version(version) VALUES ($1)", &[&(super::migrations::POSTGRES.len() as i64)])
            .await?;
        tx.commit().await?;
        if !todo.is_empty() {
            tracing::info!(from = version, to = super::migrations::POSTGRES.len(), "PostgreSQL schema migrated");
        }
        Ok(())
    }

    async fn conn(&self) -> StoreResult<Object> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => pg(e),
            e => StoreError::Unavailable(format!("PostgreSQL pool: {e}")),
        })
    }

    /// Tells every instance's caches that something changed (after the commit).
    async fn bump(&self, c: &Object) {
        if let Err(e) = c.execute("SELECT nextval('generation')", &[]).await {
            tracing::warn!(error = %crate::logsafe::Esc(&e), "could not bump the cache generation");
        }
    }

    /// Commits the file records waiting for `parent`, batch after batch, until none is left.
    async fn drain_files(&self, parent: NodeId) {
        /// Should a batch panic, the folder's queue is not left marked as drained by a dead
        /// task: its waiting callers hear of the failure and later inserts start a new task.
        struct Guard<'a>(&'a std::sync::Mutex<FileQueues>, NodeId);
        impl Drop for Guard<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.1);
                }
            }
        }
        let _guard = Guard(&self.files, parent);
        loop {
            let jobs: Vec<FileJob> = {
                let mut queues = self.files.lock().unwrap_or_else(|p| p.into_inner());
                let Some(q) = queues.get_mut(&parent).filter(|q| !q.is_empty()) else {
                    queues.remove(&parent);
                    return;
                };
                let n = q.len().min(MAX_FILE_BATCH);
                q.drain(..n).collect()
            };
            self.commit_files(parent, jobs).await;
        }
    }

    /// One transaction for many file records into one folder, each in a savepoint: one that
    /// fails (quota, folder gone) is rolled back alone. Everyone hears back after the commit;
    /// if it fails, everyone gets its error (nothing was kept).
    async fn commit_files(&self, parent: NodeId, jobs: Vec<FileJob>) {
        let now = self.clock.now_ms();
        let mut outs: Vec<StoreResult<Node>> = Vec::with_capacity(jobs.len());
        let batch: StoreResult<()> = async {
            let mut c = self.conn().await?;
            let mut tx = c.transaction().await.map_err(pg)?;
            for j in &jobs {
                let sp = tx.savepoint("job").await.map_err(pg)?;
                // The first job takes the owner's lock; the others re-enter it.
                let out = insert_one(&sp, parent, &j.file, j.quota, now).await;
                if out.is_ok() {
                    sp.commit().await.map_err(pg)?;
                } else {
                    sp.rollback().await.map_err(pg)?;
                    // `rollback` goes back to the savepoint and keeps it: let it go.
                    tx.batch_execute("RELEASE SAVEPOINT job").await.map_err(pg)?;
                }
                outs.push(out);
            }
            tx.commit().await.map_err(pg)?;
            self.bump(&c).await;
            Ok(())
        }
        .await;
        let mut outs = outs.into_iter();
        for j in jobs {
            let out = match &batch {
                Ok(()) => outs.next().expect("every job of a committed batch ran"),
                Err(e) => Err(e.clone()),
            };
            let _ = j.answer.send(out);
        }
    }

    async fn one<T>(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        f: fn(&Row) -> T,
    ) -> StoreResult<Option<T>> {
        let c = self.conn().await?;
        let st = c.prepare_cached(sql).await.map_err(pg)?;
        Ok(c.query_opt(&st, params).await.map_err(pg)?.as_ref().map(f))
    }

    async fn all<T>(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        f: fn(&Row) -> T,
    ) -> StoreResult<Vec<T>> {
        let c = self.conn().await?;
        let st = c.prepare_cached(sql).await.map_err(pg)?;
        Ok(c.query(&st, params).await.map_err(pg)?.iter().map(f).collect())
    }

    /// One statement in its own transaction, then the generation bump; rows changed.
    async fn exec(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> StoreResult<u64> {
        let c = self.conn().await?;
        let st = c.prepare_cached(sql).await.map_err(pg)?;
        let n = c.execute(&st, params).await.map_err(pg)?;
        self.bump(&c).await;
        Ok(n)
    }
}

/// Takes the tree lock of the user owning `node` for the rest of the transaction; the node.
async fn lock_node(tx: &Transaction<'_>, id: NodeId) -> StoreResult<Node> {
    let owner: Option<i64> =
        tx.query_opt("SELECT user_id FROM nodes WHERE id = $1", &[&id]).await.map_err(pg)?.map(|r| r.get(0));
    let owner = owner.ok_or_else(|| StoreError::NotFound(format!("node {id}")))?;
    lock_user(tx, owner).await?;
    must_node(tx, id).await
}

async fn lock_user(tx: &Transaction<'_>, user_id: i64) -> StoreResult<()> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&user_id]).await.map_err(pg)?;
    Ok(())
}

async fn must_node(tx: &Transaction<'_>, id: NodeId) -> StoreResult<Node> {
    tx.query_opt(&format!("SELECT {NODE_COLS} FROM nodes WHERE id = $1"), &[&id])
        .await
        .map_err(pg)?
        .map(|r| node(&r))
        .ok_or_else(|| StoreError::NotFound(format!("node {id}")))
}

async fn child(tx: &Transaction<'_>, parent: NodeId, name: &str) -> StoreResult<Option<Node>> {
    let st = tx
        .prepare_cached(&format!("SELECT {NODE_COLS} FROM nodes WHERE parent_id = $1 AND name = $2"))
        .await
        .map_err(pg)?;
    Ok(tx.query_opt(&st, &[&parent, &name]).await.map_err(pg)?.map(|r| node(&r)))
}

async fn insert_folder(tx: &Transaction<'_>, user_id: i64, parent: NodeId, name: &str, now: i64) -> StoreResult<Node> {
    if child(tx, parent, name).await?.is_some() {
        return Err(StoreError::AlreadyExists(name.to_owned()));
    }
    let r = tx
        .query_one(
            &format!(
                "INSERT INTO nodes(user_id, parent_id, name, is_dir, created, updated) VALUES ($1, $2, $3, TRUE, $4, $4) \
                 RETURNING {NODE_COLS}"
            ),
            &[&user_id, &parent, &name, &now],
        )
        .await
        .map_err(pg)?;
    Ok(node(&r))
}

async fn charge(tx: &Transaction<'_>, user_id: i64, bytes: u64, quota: u64) -> StoreResult<()> {
    let used: i64 = tx
        .query_opt("SELECT used FROM users WHERE id = $1", &[&user_id])
        .await
        .map_err(pg)?
        .map(|r| r.get(0))
        .ok_or_else(|| StoreError::NotFound(format!("user {user_id}")))?;
    let free = quota.saturating_sub(used as u64);
    if bytes > free {
        return Err(StoreError::QuotaExceeded { needed: bytes, free });
    }
    tx.execute("UPDATE users SET used = used + $2 WHERE id = $1", &[&user_id, &(bytes as i64)]).await.map_err(pg)?;
    Ok(())
}

/// Records one file under `parent` in `tx`: checks, quota charge, row.
async fn insert_one(tx: &Transaction<'_>, parent: NodeId, file: &NewFile, quota: u64, now: i64) -> StoreResult<Node> {
    let p = lock_node(tx, parent).await?;
    if !p.is_dir {
        return Err(StoreError::NotFound(format!("folder {parent}")));
    }
    charge(tx, p.user_id, file.size, quota).await?;
    let id = insert_file_row(tx, &p, file, now).await?;
    must_node(tx, id).await
}

async fn insert_file_row(tx: &Transaction<'_>, p: &Node, file: &NewFile, now: i64) -> StoreResult<NodeId> {
    let mut name = file.name.clone();
    let mut n = 0;
    while child(tx, p.id, &name).await?.is_some() {
        n += 1;
        name = crate::domain::names::clash_name(&file.name, n);
    }
    let st = tx
        .prepare_cached(
            "INSERT INTO nodes(user_id, parent_id, name, is_dir, size, blob, file_type, mime, metadata, created, updated) \
             VALUES ($1, $2, $3, FALSE, $4, $5, $6, $7, $8, $9, $9) RETURNING id",
        )
        .await
        .map_err(pg)?;
    let id: i64 = tx
        .query_one(
            &st,
            &[
                &p.user_id,
                &p.id,
                &name,
                &(file.size as i64),
                &file.blob,
                &type_name(file.file_type),
                &file.mime,
                &file.metadata,
                &now,
            ],
        )
        .await
        .map_err(pg)?
        .get(0);
    let counted = tx
        .execute("UPDATE blobs SET refs = refs + 1 WHERE key = $1 AND NOT reaping", &[&file.blob])
        .await
        .map_err(pg)?;
    if counted == 0 {
        return Err(StoreError::NotFound(format!("blob claim {}", file.blob)));
    }
    Ok(id)
}

async fn release_blob(tx: &Transaction<'_>, key: &str, now: i64) -> StoreResult<bool> {
    let refs: i64 = tx
        .query_one("UPDATE blobs SET refs = refs - 1, since = $2 WHERE key = $1 RETURNING refs", &[&key, &now])
        .await
        .map_err(pg)?
        .get(0);
    Ok(refs <= 0)
}

async fn is_within(tx: &Transaction<'_>, mut id: NodeId, ancestor: NodeId) -> StoreResult<bool> {
    loop {
        if id == ancestor {
            return Ok(true);
        }
        match must_node(tx, id).await?.parent_id {
            Some(p) => id = p,
            None => return Ok(false),
        }
    }
}

async fn subtree(tx: &Transaction<'_>, root: NodeId) -> StoreResult<Vec<Node>> {
    let sql = format!(
        "WITH RECURSIVE sub(id, depth) AS (SELECT $1::BIGINT, 0 UNION ALL \
         SELECT n.id, sub.depth + 1 FROM nodes n JOIN sub ON n.parent_id = sub.id) \
         SELECT {} FROM sub JOIN nodes n ON n.id = sub.id ORDER BY sub.depth",
        NODE_COLS.split(", ").map(|c| format!("n.{c}")).collect::<Vec<_>>().join(", ")
    );
    Ok(tx.query(&sql, &[&root]).await.map_err(pg)?.iter().map(node).collect())
}

/// Takes a single-use record (codes, upload URLs) and marks it used, in the transaction.
async fn take_once(
    tx: &Transaction<'_>,
    table: &str,
    cols: &str,
    filter: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> StoreResult<Option<(Row, bool)>> {
    let ncols = cols.split(',').count();
    let row = tx
        .query_opt(&format!("SELECT {cols}, used FROM {table} WHERE {filter} FOR UPDATE"), params)
        .await
        .map_err(pg)?;
    let Some(row) = row else { return Ok(None) };
    let used: bool = row.get(ncols);
    tx.execute(&format!("UPDATE {table} SET used = TRUE WHERE {filter}"), params).await.map_err(pg)?;
    Ok(Some((row, used)))
}

/// Inserts rows as they are, keys included (imports, snapshot restores).
async fn insert_rows(tx: &Transaction<'_>, table: &TableSpec, rows: Vec<Vec<Cell>>) -> StoreResult<()> {
    use tokio_postgres::types::ToSql;
    let marks = (1..=table.columns.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
    let sql = format!("INSERT INTO {}({}) VALUES ({marks})", table.name, table.column_list());
    let st = tx.prepare(&sql).await.map_err(pg)?;
    for row in rows {
        let values: Vec<Box<dyn ToSql + Sync + Send>> = row
            .into_iter()
            .zip(table.columns)
            .map(|(cell, (_, kind))| -> Box<dyn ToSql + Sync + Send> {
                match (cell, kind) {
                    (Cell::Null, Kind::Int) => Box::new(None::<i64>),
                    (Cell::Null, Kind::Int32) => Box::new(None::<i32>),
                    (Cell::Null, Kind::Bool) => Box::new(None::<bool>),
                    (Cell::Null, Kind::Text) => Box::new(None::<String>),
                    (Cell::Null, Kind::Bytes) => Box::new(None::<Vec<u8>>),
                    (Cell::Int(n), Kind::Int32) => Box::new(n as i32),
                    (Cell::Int(n), Kind::Bool) => Box::new(n != 0),
                    (Cell::Int(n), _) => Box::new(n),
                    (Cell::Text(t), Kind::Bytes) => Box::new(t.into_bytes()),
                    (Cell::Text(t), _) => Box::new(t),
                    (Cell::Bytes(b), Kind::Text) => Box::new(String::from_utf8_lossy(&b).into_owned()),
                    (Cell::Bytes(b), _) => Box::new(b),
                }
            })
            .collect();
        let params: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v.as_ref() as &(dyn ToSql + Sync)).collect();
        tx.execute(&st, &params).await.map_err(pg)?;
    }
    Ok(())
}

#[async_trait]
impl Accounts for Postgres {
    async fn ensure_user(&self, name: &str) -> StoreResult<User> {
        if let Some(u) = self.one(&format!("SELECT {USER_COLS} FROM users WHERE name = $1"), &[&name], user).await? {
            return Ok(u);
        }
        let now = self.clock.now_ms();
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let made = tx
            .query_opt(
                &format!("INSERT INTO users(name, created) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING {USER_COLS}"),
                &[&name, &now],
            )
            .await
            .map_err(pg)?;
        let u = match made {
            Some(r) => {
                let u = user(&r);
                tx.execute(
                    "INSERT INTO nodes(user_id, parent_id, name, is_dir, created, updated) VALUES ($1, NULL, '', TRUE, $2, $2)",
                    &[&u.id, &now],
                )
                .await
                .map_err(pg)?;
                u
            }
            None => user(
                &tx.query_one(&format!("SELECT {USER_COLS} FROM users WHERE name = $1"), &[&name]).await.map_err(pg)?,
            ),
        };
        tx.commit().await.map_err(pg)?;
        self.bump(&c).await;
        Ok(u)
    }

    async fn user(&self, id: i64) -> StoreResult<Option<User>> {
        self.one(&format!("SELECT {USER_COLS} FROM users WHERE id = $1"), &[&id], user).await
    }

    async fn ensure_app(&self, name: &str, scopes: &str) -> StoreResult<App> {
        let now = self.clock.now_ms();
        self.exec(
            "INSERT INTO apps(name, client_id, scopes, created) \
             VALUES ($1, $1, $3, $2) ON CONFLICT DO NOTHING",
            &[&name, &now, &scopes],
        )
        .await?;
        self.one(&format!("SELECT {APP_COLS} FROM apps WHERE name = $1"), &[&name], app)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("app {name:?}")))
    }

    async fn set_disabled(&self, is_app: bool, name: &str, disabled: bool) -> StoreResult<bool> {
        let sql = if is_app {
            "UPDATE apps SET disabled = $2 WHERE name = $1"
        } else {
            "UPDATE users SET disabled = $2 WHERE name = $1"
        };
        Ok(self.exec(sql, &[&name, &disabled]).await? > 0)
    }

    async fn app(&self, id: i64) -> StoreResult<Option<App>> {
        self.one(&format!("SELECT {APP_COLS} FROM apps WHERE id = $1"), &[&id], app).await
    }

    async fn create_user(&self, name: &str, password_hash: &str, quota: Option<u64>) -> StoreResult<User> {
        let now = self.clock.now_ms();
        let quota = quota.map(|q| q as i64);
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let made = tx
            .query_opt(
                &format!(
                    "INSERT INTO users(name, password_hash, quota, created) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (name) DO NOTHING RETURNING {USER_COLS}"
                ),
                &[&name, &password_hash, &quota, &now],
            )
            .await
            .map_err(pg)?;
        let u = user(&made.ok_or_else(|| StoreError::AlreadyExists(name.to_owned()))?);
        tx.execute(
            "INSERT INTO nodes(user_id, parent_id, name, is_dir, created, updated) VALUES ($1, NULL, '', TRUE, $2, $2)",
            &[&u.id, &now],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        self.bump(&c).await;
        Ok(u)
    }

    async fn user_by_name(&self, name: &str) -> StoreResult<Option<(User, Option<String>)>> {
        self.one(&format!("SELECT {USER_COLS}, password_hash FROM users WHERE name = $1"), &[&name], |r| {
            (user(r), r.get(5))
        })
        .await
    }

    async fn users(&self) -> StoreResult<Vec<User>> {
        self.all(&format!("SELECT {USER_COLS} FROM users ORDER BY name COLLATE \"C\""), &[], user).await
    }

    async fn remove_user(&self, name: &str) -> StoreResult<Vec<String>> {
        let now = self.clock.now_ms();
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let id: i64 = tx
            .query_opt("SELECT id FROM users WHERE name = $1", &[&name])
            .await
            .map_err(pg)?
            .map(|r| r.get(0))
            .ok_or_else(|| StoreError::NotFound(format!("user {name:?}")))?;
        lock_user(&tx, id).await?;
        let blobs: Vec<String> = tx
            .query("SELECT blob FROM nodes WHERE user_id = $1 AND blob IS NOT NULL", &[&id])
            .await
            .map_err(pg)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut freed = Vec::new();
        for blob in blobs {
            if release_blob(&tx, &blob, now).await? {
                freed.push(blob);
            }
        }
        for sql in [
            "DELETE FROM nodes WHERE user_id = $1",
            "DELETE FROM tokens WHERE user_id = $1",
            "DELETE FROM codes WHERE user_id = $1",
            "DELETE FROM consents WHERE user_id = $1",
            "DELETE FROM web_sessions WHERE user_id = $1",
            "DELETE FROM sessions WHERE user_id = $1",
            "DELETE FROM users WHERE id = $1",
        ] {
            tx.execute(sql, &[&id]).await.map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        self.bump(&c).await;
        Ok(freed)
    }

    async fn create_app(&self, a: NewApp) -> StoreResult<App> {
        let uris = serde_json::to_string(&a.redirect_uris).map_err(|e| StoreError::Backend(e.to_string()))?;
        let now = self.clock.now_ms();
        let limit = a.rate_limit.map(|l| l as i32);
        let c = self.conn().await?;
        let made = c
            .query_opt(
                &format!(
                    "INSERT INTO apps(name, client_id, secret_hash, redirect_uris, scopes, rate_limit, created) \
                     VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT DO NOTHING RETURNING {APP_COLS}"
                ),
                &[&a.name, &a.client_id, &a.secret_hash, &uris, &a.scopes, &limit, &now],
            )
            .await
            .map_err(pg)?;
        self.bump(&c).await;
        made.map(|r| app(&r)).ok_or(StoreError::AlreadyExists(a.name))
    }

    async fn app_by_client_id(&self, client_id: &str) -> StoreResult<Option<App>> {
        self.one(&format!("SELECT {APP_COLS} FROM apps WHERE client_id = $1"), &[&client_id], app).await
    }

    async fn apps(&self) -> StoreResult<Vec<App>> {
        self.all(&format!("SELECT {APP_COLS} FROM apps ORDER BY name COLLATE \"C\""), &[], app).await
    }

    async fn remove_app(&self, name: &str) -> StoreResult<bool> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let Some(id): Option<i64> =
            tx.query_opt("SELECT id FROM apps WHERE name = $1", &[&name]).await.map_err(pg)?.map(|r| r.get(0))
        else {
            return Ok(false);
        };
        for sql in [
            "DELETE FROM tokens WHERE app_id = $1",
            "DELETE FROM codes WHERE app_id = $1",
            "DELETE FROM consents WHERE app_id = $1",
            "DELETE FROM apps WHERE id = $1",
        ] {
            tx.execute(sql, &[&id]).await.map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        self.bump(&c).await;
        Ok(true)
    }
}

#[async_trait]
impl Grants for Postgres {
    async fn insert_code(&self, hash: &[u8], code: CodeRecord) -> StoreResult<()> {
        self.exec(
            "INSERT INTO codes(hash, app_id, user_id, redirect_uri, scope, code_challenge, expires_at) VALUES ($1,$2,$3,$4,$5,$6,$7)",
            &[&hash, &code.app_id, &code.user_id, &code.redirect_uri, &code.scope, &code.code_challenge, &code.expires_at],
        )
        .await
        .map(drop)
    }

    async fn take_code(&self, hash: &[u8]) -> StoreResult<Option<(CodeRecord, bool)>> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let found = take_once(
            &tx,
            "codes",
            "app_id, user_id, redirect_uri, scope, code_challenge, expires_at",
            "hash = $1",
            &[&hash],
        )
        .await?
        .map(|(r, used)| {
            let code = CodeRecord {
                app_id: r.get(0),
                user_id: r.get(1),
                redirect_uri: r.get(2),
                scope: r.get(3),
                code_challenge: r.get(4),
                expires_at: r.get(5),
            };
            (code, used)
        });
        tx.commit().await.map_err(pg)?;
        self.bump(&c).await;
        Ok(found)
    }

    async fn consent(&self, user_id: i64, app_id: i64) -> StoreResult<Option<String>> {
        self.one("SELECT scope FROM consents WHERE user_id = $1 AND app_id = $2", &[&user_id, &app_id], |r| r.get(0))
            .await
    }

    async fn merge_consent(&self, user_id: i64, app_id: i64, scopes: &[String]) -> StoreResult<()> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg)?;
        // Create the row first, so the FOR UPDATE below always has a row to lock.
        tx.execute(
            "INSERT INTO consents(user_id, app_id, scope) VALUES ($1, $2, '') ON CONFLICT DO NOTHING",
            &[&user_id, &app_id],
        )
        .await
        .map_err(pg)?;
        let granted: String = tx
            .query_one("SELECT scope FROM consents WHERE user_id = $1 AND app_id = $2 FOR UPDATE", &[&user_id, &app_id])
            .await
            .map_err(pg)?
            .get(0);
        let scope = super::merge_scopes(&granted, scopes);
        tx.execute("UPDATE consents SET scope = $3 WHERE user_id = $1 AND app_id = $2", &[&user_id, &app_id, &scope])
            .await
            .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        self.bump(&c).await;
        Ok(())
    }

    async fn insert_web_session(&self, hash: &[u8], s: WebSession) -> StoreResult<()> {
        self.exec(
            "INSERT INTO web_sessions(hash, user_id, csrf, expires_at) VALUES ($1, $2, $3, $4)",
            &[&hash, &s.user_id, &s.csrf, &s.expires_at],
        )
        .await
        .map(drop)
    }

    async fn web_session(&self, hash: &[u8]) -> StoreResult<Option<WebSession>> {
        self.one("SELECT user_id, csrf, expires_at FROM web_sessions WHERE hash = $1", &[&hash], |r| WebSession {
            user_id: r.get(0),
            csrf: r.get(1),
            expires_at: r.get(2),
        })
        .await
    }

    async fn delete_web_session(&self, hash: &[u8]) -> StoreResult<()> {
        self.exec("DELETE FROM web_sessions WHERE hash = $1", &[&hash]).await.map(drop)
    }

    async fn revoke_token(&self, hash: &[u8], app_id: i64, whole_grant: bool) -> StoreResult<bool> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let found = tx
            .query_opt(
                "UPDATE tokens SET revoked = TRUE WHERE hash = $1 AND app_id = $2 RETURNING kind, grant_id",
                &[&hash, &app_id],
            )
            .await
            .map_err(pg)?;
        let Some(r) = found else { return Ok(false) };
        let (kind, grant): (String, String) = (r.get(0), r.get(1));
        if whole_grant && kind == "refresh" && !grant.is_empty() {
            tx.execute("UPDATE tokens SET revoked = TRUE WHERE grant_id = $1", &[&grant]).await.map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        self.bump(&c).await;
        Ok(true)
    }

    async fn insert_upload_url(&self, hash: &[u8], u: UploadUrl) -> StoreResult<()> {
        self.exec(
            "INSERT INTO upload_urls(hash, cookie_hash, user_id, app_id, scope, name, size, expires_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
            &[&hash, &u.cookie_hash, &u.user_id, &u.app_id, &u.scope, &u.name, &(u.size as i64), &u.expires_at],
        )
        .await
        .map(drop)
    }

    async fn take_upload_url(&self, hash: &[u8], cookie_hash: &[u8]) -> StoreResult<Option<(UploadUrl, bool)>> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let found = take_once(
            &tx,
            "upload_urls",
            "cookie_hash, user_id, app_id, scope, name, size, expires_at",
            "hash = $1 AND cookie_hash = $2",
            &[&hash, &cookie_hash],
        )
        .await?
        .map(|(r, used)| {
            let url = UploadUrl {
                cookie_hash: r.get(0),
                user_id: r.get(1),
                app_id: r.get(2),
                scope: r.get(3),
                name: r.get(4),
                size: r.get::<_, i64>(5) as u64,
                expires_at: r.get(6),
            };
            (url, used)
        });
        tx.commit().await.map_err(pg)?;
        self.bump(&c).await;
        Ok(found)
    }

    async fn purge_expired(&self, now: i64, tokens_before: i64) -> StoreResult<usize> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let mut n = 0;
        for table in ["codes", "upload_urls", "web_sessions", "sessions"] {
            n += tx.execute(&format!("DELETE FROM {table} WHERE expires_at < $1"), &[&now]).await.map_err(pg)?;
        }
        n += tx.execute("DELETE FROM tokens WHERE expires_at < $1", &[&tokens_before]).await.map_err(pg)?;
        // Sign-in failures are forgotten an hour after the last one.
        n += tx.execute("DELETE FROM login_failures WHERE last < $1", &[&((now - 3600) * 1000)]).await.map_err(pg)?;
        // Refilled rate-limit buckets are the same as none.
        n += tx.execute("DELETE FROM rate_limits WHERE tat < $1", &[&(now * 1000)]).await.map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        self.bump(&c).await;
        Ok(n as usize)
    }

    async fn revoke_grant(&self, grant: &str) -> StoreResult<()> {
        self.exec("UPDATE tokens SET revoked = TRUE WHERE grant_id = $1", &[&grant]).await.map(drop)
    }

    async fn consents_of(&self, user_id: i64) -> StoreResult<Vec<(i64, String)>> {
        self.all("SELECT app_id, scope FROM consents WHERE user_id = $1 ORDER BY app_id", &[&user_id], |r| {
            (r.get(0), r.get(1))
        })
        .await
    }

    async fn forget_access(&self, user_id: i64, app_id: i64) -> StoreResult<bool> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let consents = tx
            .execute("DELETE FROM consents WHERE user_id = $1 AND app_id = $2", &[&user_id, &app_id])
            .await
            .map_err(pg)?;
        let tokens = tx
            .execute(
                "UPDATE tokens SET revoked = TRUE WHERE user_id = $1 AND app_id = $2 AND NOT revoked",
                &[&user_id, &app_id],
            )
            .await
            .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        self.bump(&c).await;
        Ok(consents + tokens > 0)
    }

    async fn insert_tokens(&self, tokens: Vec<NewToken>) -> StoreResult<()> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg)?;
        for t in &tokens {
            let r = &t.record;
            tx.execute(
                "INSERT INTO tokens(hash, kind, user_id, app_id, scope, expires_at, revoked, grant_id) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
                &[&t.hash, &r.kind, &r.user_id, &r.app_id, &r.scope, &r.expires_at, &r.revoked, &r.grant],
            )
            .await
            .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        self.bump(&c).await;
        Ok(())
    }

    async fn token_access(&self, hash: &[u8]) -> StoreResult<Option<TokenAccess>> {
        // One round trip for the three rows (every request not answered from the cache asks
        // this): the statements are pipelined on one connection, and the user and the app
        // are found from the token's row by subqueries, not from a first answer.
        let c = self.conn().await?;
        let user_sql = format!("SELECT {USER_COLS} FROM users WHERE id = (SELECT user_id FROM tokens WHERE hash = $1)");
        let app_sql = format!("SELECT {APP_COLS} FROM apps WHERE id = (SELECT app_id FROM tokens WHERE hash = $1)");
        let (t, u, a) =
            tokio::try_join!(c.prepare_cached(TOKEN_SQL), c.prepare_cached(&user_sql), c.prepare_cached(&app_sql))
                .map_err(pg)?;
        let by_hash: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&hash];
        let (t, u, a) =
            tokio::try_join!(c.query_opt(&t, &by_hash), c.query_opt(&u, &by_hash), c.query_opt(&a, &by_hash))
                .map_err(pg)?;
        let Some(token) = t.as_ref().map(token_record) else { return Ok(None) };
        Ok(Some(TokenAccess { token, user: u.as_ref().map(user), app: a.as_ref().map(app) }))
    }

    async fn token(&self, hash: &[u8]) -> StoreResult<Option<TokenRecord>> {
        self.one(TOKEN_SQL, &[&hash], token_record).await
    }

    async fn set_token(&self, hash: &[u8], expires_at: Option<i64>, revoke: bool) -> StoreResult<bool> {
        let n = self
            .exec(
                "UPDATE tokens SET expires_at = COALESCE($2, expires_at), revoked = revoked OR $3 WHERE hash = $1",
                &[&hash, &expires_at, &revoke],
            )
            .await?;
        Ok(n > 0)
    }

    async fn insert_session(&self, esid: &str, user_id: i64, expires_at: i64) -> StoreResult<()> {
        self.exec(
            "INSERT INTO sessions(esid, user_id, expires_at) VALUES ($1, $2, $3)",
            &[&esid, &user_id, &expires_at],
        )
        .await
        .map(drop)
    }
}

#[async_trait]
impl Tree for Postgres {
    async fn root(&self, user_id: i64) -> StoreResult<Node> {
        self.one(&format!("SELECT {NODE_COLS} FROM nodes WHERE user_id = $1 AND parent_id IS NULL"), &[&user_id], node)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("root of user {user_id}")))
    }

    async fn node(&self, id: NodeId) -> StoreResult<Option<Node>> {
        self.one(&format!("SELECT {NODE_COLS} FROM nodes WHERE id = $1"), &[&id], node).await
    }

    async fn walk(&self, start: NodeId, names: &[String]) -> StoreResult<Option<Node>> {
        let c = self.conn().await?;
        let by_id = c.prepare_cached(&format!("SELECT {NODE_COLS} FROM nodes WHERE id = $1")).await.map_err(pg)?;
        let by_name = c
            .prepare_cached(&format!("SELECT {NODE_COLS} FROM nodes WHERE parent_id = $1 AND name = $2"))
            .await
            .map_err(pg)?;
        let Some(mut cur) = c.query_opt(&by_id, &[&start]).await.map_err(pg)?.map(|r| node(&r)) else {
            return Ok(None);
        };
        for name in names {
            if !cur.is_dir {
                return Ok(None);
            }
            match c.query_opt(&by_name, &[&cur.id, name]).await.map_err(pg)? {
                Some(r) => cur = node(&r),
                None => return Ok(None),
            }
        }
        Ok(Some(cur))
    }

    async fn ensure_folders(&self, start: NodeId, names: &[String]) -> StoreResult<Node> {
        if let Some(n) = self.walk(start, names).await?
            && n.is_dir
        {
            return Ok(n);
        }
        let now = self.clock.now_ms();
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let mut cur = lock_node(&tx, start).await?;
        for name in names {
            cur = match child(&tx, cur.id, name).await? {
                Some(n) if n.is_dir => n,
                Some(_) => return Err(StoreError::AlreadyExists(name.clone())),
                None => insert_folder(&tx, cur.user_id, cur.id, name, now).await?,
            };
        }
        tx.commit().await.map_err(pg)?;
        self.bump(&c).await;
        Ok(cur)
    }

    async fn children(&self, parent: NodeId, q: ChildQuery) -> StoreResult<Vec<Node>> {
        let kinds = match (q.dirs, q.files) {
            (true, true) => "",
            (true, false) => " AND is_dir",
            (false, true) => " AND NOT is_dir",
            (false, false) => return Ok(Vec::new()),
        };
        let ft = q.file_type.map(type_name);
        let type_filter = if ft.is_some() { " AND (is_dir OR file_type = $2)" } else { " AND $2::TEXT IS NULL" };
        let sql = format!(
            "SELECT {NODE_COLS} FROM nodes WHERE parent_id = $1{kinds}{type_filter} \
             ORDER BY is_dir DESC, name LIMIT $3 OFFSET $4"
        );
        let limit = q.limit.map(|l| l.min(i64::MAX as u64) as i64).unwrap_or(i64::MAX);
        let c = self.conn().await?;
        let st = c.prepare_cached(&sql).await.map_err(pg)?;
        Ok(c.query(&st, &[&parent, &ft, &limit, &(q.offset as i64)]).await.map_err(pg)?.iter().map(node).collect())
    }

    async fn descendants(&self, folder: NodeId, dirs_only: bool) -> StoreResult<Vec<Descendant>> {
        let only = if dirs_only { " AND n.is_dir" } else { "" };
        let base_only = if dirs_only { " AND is_dir" } else { "" };
        let sql = format!(
            "WITH RECURSIVE sub(id, name, is_dir, rel) AS ( \
               SELECT id, name, is_dir, ''::TEXT COLLATE \"C\" FROM nodes WHERE parent_id = $1{base_only} \
               UNION ALL \
               SELECT n.id, n.name, n.is_dir, (sub.rel || sub.name || '/') COLLATE \"C\" FROM nodes n \
                 JOIN sub ON n.parent_id = sub.id WHERE sub.is_dir{only}) \
             SELECT {}, sub.rel FROM sub JOIN nodes n ON n.id = sub.id ORDER BY (sub.rel || sub.name) COLLATE \"C\"",
            NODE_COLS.split(", ").map(|c| format!("n.{c}")).collect::<Vec<_>>().join(", ")
        );
        self.all(&sql, &[&folder], |r| Descendant { node: node(r), parent_rel: r.get(12) }).await
    }

    async fn create_folder(&self, parent: NodeId, name: &str) -> StoreResult<Node> {
        let now = self.clock.now_ms();
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let p = lock_node(&tx, parent).await?;
        if !p.is_dir {
            return Err(StoreError::NotFound(format!("folder {parent}")));
        }
        let n = insert_folder(&tx, p.user_id, parent, name, now).await?;
        tx.commit().await.map_err(pg)?;
        self.bump(&c).await;
        Ok(n)
    }

    async fn insert_file(&self, parent: NodeId, file: NewFile, quota: u64) -> StoreResult<Node> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job = FileJob { file, quota, answer };
        // No entry: no task commits this folder's batches now; this record starts one.
        let start = match self.files.lock().unwrap_or_else(|p| p.into_inner()).entry(parent) {
            std::collections::hash_map::Entry::Occupied(mut q) => {
                q.get_mut().push(job);
                false
            }
            std::collections::hash_map::Entry::Vacant(q) => {
                q.insert(vec![job]);
                true
            }
        };
        if start {
            let this = self.clone();
            tokio::spawn(async move { this.drain_files(parent).await });
        }
        answered.await.map_err(|_| StoreError::Backend("the file batch task failed".into()))?
    }

    async fn insert_files(&self, parent: NodeId, files: Vec<NewFile>, quota: u64) -> StoreResult<usize> {
        let now = self.clock.now_ms();
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let p = lock_node(&tx, parent).await?;
        if !p.is_dir {
            return Err(StoreError::NotFound(format!("folder {parent}")));
        }
        charge(&tx, p.user_id, files.iter().map(|f| f.size).sum(), quota).await?;
        for f in &files {
            insert_file_row(&tx, &p, f, now).await?;
        }
        tx.commit().await.map_err(pg)?;
        self.bump(&c).await;
        Ok(files.len())
    }

    async fn relocate(&self, id: NodeId, parent: NodeId, name: &str) -> StoreResult<Node> {
        let now = self.clock.now_ms();
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let n = lock_node(&tx, id).await?;
        let p = must_node(&tx, parent).await?;
        if !p.is_dir || p.user_id != n.user_id {
            return Err(StoreError::NotFound(format!("folder {parent}")));
        }
        if n.is_dir && is_within(&tx, parent, id).await? {
            return Err(StoreError::IntoItself);
        }
        if n.parent_id == Some(parent) && n.name == name {
            return Ok(n);
        }
        if child(&tx, parent, name).await?.is_some() {
            return Err(StoreError::AlreadyExists(name.to_owned()));
        }
        tx.execute(
            "UPDATE nodes SET parent_id = $2, name = $3, updated = $4 WHERE id = $1",
            &[&id, &parent, &name, &now],
        )
        .await
        .map_err(pg)?;
        let out = must_node(&tx, id).await?;
        tx.commit().await.map_err(pg)?;
        self.bump(&c).await;
        Ok(out)
    }

    async fn copy(&self, id: NodeId, parent: NodeId, name: &str, quota: u64) -> StoreResult<Node> {
        let now = self.clock.now_ms();
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let src = lock_node(&tx, id).await?;
        let p = must_node(&tx, parent).await?;
        if !p.is_dir || p.user_id != src.user_id {
            return Err(StoreError::NotFound(format!("folder {parent}")));
        }
        if src.is_dir && is_within(&tx, parent, id).await? {
            return Err(StoreError::IntoItself);
        }
        if child(&tx, parent, name).await?.is_some() {
            return Err(StoreError::AlreadyExists(name.to_owned()));
        }
        let items = subtree(&tx, id).await?;
        let bytes: u64 = items.iter().filter(|n| !n.is_dir).map(|n| n.size).sum();
        charge(&tx, src.user_id, bytes, quota).await?;
        let mut new_ids = std::collections::HashMap::new();
        for item in &items {
            let (new_parent, new_name) = if item.id == id {
                (parent, name)
            } else {
                let old_parent = item.parent_id.expect("subtree member has a parent");
                (new_ids[&old_parent], item.name.as_str())
            };
            let new_id: i64 = tx
                .query_one(
                    "INSERT INTO nodes(user_id, parent_id, name, is_dir, size, blob, file_type, mime, metadata, created, updated) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id",
                    &[
                        &item.user_id,
                        &new_parent,
                        &new_name,
                        &item.is_dir,
                        &(item.size as i64),
                        &item.blob,
                        &item.file_type.map(type_name),
                        &item.mime,
                        &item.metadata,
                        &now,
                    ],
                )
                .await
                .map_err(pg)?
                .get(0);
            new_ids.insert(item.id, new_id);
            if let Some(blob) = &item.blob {
                tx.execute("UPDATE blobs SET refs = refs + 1 WHERE key = $1", &[blob]).await.map_err(pg)?;
            }
        }
        let out = must_node(&tx, new_ids[&id]).await?;
        tx.commit().await.map_err(pg)?;
        self.bump(&c).await;
        Ok(out)
    }

    async fn delete(&self, id: NodeId) -> StoreResult<Vec<String>> {
        let now = self.clock.now_ms();
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let first = lock_node(&tx, id).await?;
        let items = subtree(&tx, id).await?;
        let bytes: u64 = items.iter().filter(|n| !n.is_dir).map(|n| n.size).sum();
        let mut freed = Vec::new();
        for item in items.iter().rev() {
            tx.execute("DELETE FROM nodes WHERE id = $1", &[&item.id]).await.map_err(pg)?;
            if let Some(blob) = &item.blob
                && release_blob(&tx, blob, now).await?
            {
                freed.push(blob.clone());
            }
        }
        tx.execute("UPDATE users SET used = GREATEST(0, used - $2) WHERE id = $1", &[&first.user_id, &(bytes as i64)])
            .await
            .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        self.bump(&c).await;
        Ok(freed)
    }

    async fn set_blob_metadata(&self, blob: &str, metadata: &str) -> StoreResult<usize> {
        Ok(self.exec("UPDATE nodes SET metadata = $2 WHERE blob = $1", &[&blob, &metadata]).await? as usize)
    }
}

#[async_trait]
impl Housekeeping for Postgres {
    async fn generation(&self) -> StoreResult<u64> {
        Ok(self.one("SELECT last_value FROM generation", &[], |r| r.get::<_, i64>(0)).await?.unwrap_or(0) as u64)
    }

    async fn secret(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>> {
        self.exec("INSERT INTO secrets(name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING", &[&name, &candidate])
            .await?;
        self.one("SELECT value FROM secrets WHERE name = $1", &[&name], |r| r.get(0))
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("secret {name}")))
    }

    async fn take_rate(
        &self,
        app_id: i64,
        user_id: i64,
        interval: i64,
        burst: i64,
        now: i64,
    ) -> StoreResult<Option<u64>> {
        // One statement: the row is locked by the upsert, so instances never both take the
        // last request of a bucket. The arithmetic is that of `domain::limits::gcra`.
        let taken = self
            .one(
                "INSERT INTO rate_limits(app_id, user_id, tat) VALUES ($1, $2, $3::BIGINT + $4::BIGINT) \
                 ON CONFLICT (app_id, user_id) DO UPDATE SET tat = GREATEST(rate_limits.tat, $3::BIGINT) + $4::BIGINT \
                 WHERE GREATEST(rate_limits.tat, $3::BIGINT) + $4::BIGINT - $3::BIGINT <= $5::BIGINT RETURNING tat",
                &[&app_id, &user_id, &now, &interval, &burst],
                |r| r.get::<_, i64>(0),
            )
            .await?;
        if taken.is_some() {
            return Ok(Some(0));
        }
        let tat: i64 = self
            .one("SELECT tat FROM rate_limits WHERE app_id = $1 AND user_id = $2", &[&app_id, &user_id], |r| r.get(0))
            .await?
            .unwrap_or(now);
        Ok(Some((tat.max(now) + interval - now - burst).max(1) as u64))
    }

    async fn login_failures(&self, keys: &[String], step: &LoginStep<'_>) -> StoreResult<Option<Result<(), i64>>> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg)?;
        // Rows locked in key order: two attempts on the same keys queue instead of deadlocking.
        let mut sorted: Vec<&String> = keys.iter().collect();
        sorted.sort();
        for k in &sorted {
            tx.execute(
                "INSERT INTO login_failures(key, count, last, wait_until) VALUES ($1, 0, 0, 0) ON CONFLICT DO NOTHING",
                &[k],
            )
            .await
            .map_err(pg)?;
        }
        let mut records = Vec::with_capacity(keys.len());
        for k in keys {
            let r = tx
                .query_one("SELECT count, last, wait_until FROM login_failures WHERE key = $1 FOR UPDATE", &[k])
                .await
                .map_err(pg)?;
            let f = LoginFailures { count: r.get::<_, i32>(0) as u32, last: r.get(1), wait_until: r.get(2) };
            records.push((f.count > 0).then_some(f));
        }
        let verdict = step(&mut records);
        if verdict.is_ok() {
            for (k, r) in keys.iter().zip(&records) {
                let f = r.unwrap_or(LoginFailures { count: 0, last: 0, wait_until: 0 });
                tx.execute(
                    "UPDATE login_failures SET count = $2, last = $3, wait_until = $4 WHERE key = $1",
                    &[k, &(f.count as i32), &f.last, &f.wait_until],
                )
                .await
                .map_err(pg)?;
            }
        }
        tx.commit().await.map_err(pg)?;
        Ok(Some(verdict))
    }

    async fn clear_login_failures(&self, keys: &[String]) -> StoreResult<bool> {
        let c = self.conn().await?;
        c.execute("DELETE FROM login_failures WHERE key = ANY($1)", &[&keys]).await.map_err(pg)?;
        Ok(true)
    }

    async fn reset(&self, keep_accounts: bool, now: i64) -> StoreResult<Vec<String>> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let keys: Vec<String> = tx
            .query("UPDATE blobs SET refs = 0, since = $1 WHERE refs > 0 RETURNING key", &[&now])
            .await
            .map_err(pg)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        // Only PostgreSQL keeps these: they are in memory on SQLite.
        let own: &[&str] = if keep_accounts { &[] } else { &["DELETE FROM rate_limits", "DELETE FROM login_failures"] };
        let statements = if keep_accounts { RESET_FILES } else { RESET_ALL }.iter().chain(own);
        for sql in statements {
            tx.execute(*sql, &[]).await.map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        self.bump(&c).await;
        Ok(keys)
    }

    async fn lease(&self, name: &str, holder: &str, until: i64, now: i64) -> StoreResult<bool> {
        let got = self
            .one(
                "INSERT INTO leases(name, holder, until) VALUES ($1, $2, $3::BIGINT) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
                 WHERE leases.until <= $4::BIGINT RETURNING holder",
                &[&name, &holder, &until, &now],
                |r| r.get::<_, String>(0),
            )
            .await?;
        Ok(got.is_some())
    }

    async fn check(&self) -> StoreResult<()> {
        self.one("SELECT 1", &[], |_| ()).await.map(drop)
    }

    async fn claim_blobs(&self, keys: &[String], now: i64) -> StoreResult<()> {
        let c = self.conn().await?;
        let st = c
            .prepare_cached("INSERT INTO blobs(key, refs, since) SELECT k, 0, $2 FROM unnest($1::text[]) AS k")
            .await
            .map_err(pg)?;
        c.execute(&st, &[&keys, &now]).await.map_err(pg)?;
        Ok(())
    }

    async fn forget_blobs(&self, keys: &[String]) -> StoreResult<()> {
        let c = self.conn().await?;
        c.execute("DELETE FROM blobs WHERE key = ANY($1) AND refs <= 0", &[&keys]).await.map_err(pg)?;
        Ok(())
    }

    async fn reap_blobs(&self, before: i64, limit: usize) -> StoreResult<Vec<String>> {
        // SKIP LOCKED: reapers on several instances take different keys.
        self.all(
            "UPDATE blobs SET reaping = TRUE WHERE key IN \
             (SELECT key FROM blobs WHERE refs <= 0 AND since < $1 ORDER BY since LIMIT $2 FOR UPDATE SKIP LOCKED) \
             RETURNING key",
            &[&before, &(limit as i64)],
            |r| r.get(0),
        )
        .await
    }

    async fn pending_blobs(&self, keys: &[String]) -> StoreResult<HashSet<String>> {
        Ok(self
            .all("SELECT key FROM blobs WHERE key = ANY($1) AND refs <= 0", &[&keys], |r| r.get(0))
            .await?
            .into_iter()
            .collect())
    }

    async fn file_blobs(&self, after: Option<&str>, limit: usize) -> StoreResult<Vec<(String, u64)>> {
        let after = after.unwrap_or("");
        self.all(
            "SELECT blob COLLATE \"C\" AS b, MAX(size) FROM nodes WHERE blob IS NOT NULL AND blob COLLATE \"C\" > $1 \
             GROUP BY b ORDER BY b LIMIT $2",
            &[&after, &(limit as i64)],
            |r| (r.get(0), r.get::<_, i64>(1) as u64),
        )
        .await
    }

    async fn export_rows(&self, table: &'static TableSpec, offset: u64, limit: usize) -> StoreResult<Vec<Vec<Cell>>> {
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {} LIMIT $1 OFFSET $2",
            table.column_list(),
            table.name,
            table.key_list()
        );
        let c = self.conn().await?;
        let rows = c.query(&sql, &[&(limit as i64), &(offset as i64)]).await.map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| {
                table
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, (_, kind))| {
                        let cell = match kind {
                            Kind::Int => r.get::<_, Option<i64>>(i).map(Cell::Int),
                            Kind::Int32 => r.get::<_, Option<i32>>(i).map(|n| Cell::Int(n.into())),
                            Kind::Bool => r.get::<_, Option<bool>>(i).map(|b| Cell::Int(b.into())),
                            Kind::Text => r.get::<_, Option<String>>(i).map(Cell::Text),
                            Kind::Bytes => r.get::<_, Option<Vec<u8>>>(i).map(Cell::Bytes),
                        };
                        cell.unwrap_or(Cell::Null)
                    })
                    .collect()
            })
            .collect())
    }

    async fn import_rows(&self, table: &'static TableSpec, rows: Vec<Vec<Cell>>) -> StoreResult<()> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg)?;
        insert_rows(&tx, table, rows).await?;
        tx.commit().await.map_err(pg)?;
        self.bump(&c).await;
        Ok(())
    }

    async fn replace_all(&self, tables: Vec<(&'static TableSpec, Vec<Vec<Cell>>)>) -> StoreResult<()> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg)?;
        for (table, rows) in tables {
            tx.execute(&format!("DELETE FROM {}", table.name), &[]).await.map_err(pg)?;
            insert_rows(&tx, table, rows).await?;
        }
        tx.commit().await.map_err(pg)?;
        drop(c);
        self.finish_import().await
    }

    async fn finish_import(&self) -> StoreResult<()> {
        let c = self.conn().await?;
        for table in ["users", "apps", "nodes"] {
            c.execute(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
                ),
                &[],
            )
            .await
            .map_err(pg)?;
        }
        self.bump(&c).await;
        Ok(())
    }

    async fn usage_mismatches(&self) -> StoreResult<Vec<(String, u64, u64)>> {
        self.all(
            "SELECT u.name, u.used, COALESCE(s.sum, 0)::BIGINT FROM users u LEFT JOIN \
             (SELECT user_id, SUM(size) AS sum FROM nodes WHERE NOT is_dir GROUP BY user_id) s ON s.user_id = u.id \
             WHERE u.used != COALESCE(s.sum, 0) ORDER BY u.name COLLATE \"C\"",
            &[],
            |r| (r.get(0), r.get::<_, i64>(1) as u64, r.get::<_, i64>(2) as u64),
        )
        .await
    }
}
