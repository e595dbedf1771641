//! The emulator's snapshots: the whole metadata of the installation, kept in this process,
//! restored in one transaction. Cheap, because content is immutable: a snapshot keeps the
//! keys it names, and no object a snapshot names is deleted while the snapshot exists (a
//! delete or a reset only forgets such a key in the database; a restore brings it back).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use super::{Error, Result, Service};
use crate::store::{Cell, TABLES, TableSpec};

/// Rows read per page while taking a snapshot.
const PAGE: usize = 1000;

struct Snapshot {
    tables: Vec<(&'static TableSpec, Vec<Vec<Cell>>)>,
    /// The content keys it names (rows of `blobs`).
    keys: HashSet<String>,
}

/// The snapshots of a service, by id.
#[derive(Default)]
pub struct Snapshots {
    map: Mutex<HashMap<String, Arc<Snapshot>>>,
    next: std::sync::atomic::AtomicU64,
}

impl Snapshots {
    /// Keeps `tables` as a new snapshot; its id.
    fn register(&self, tables: Vec<(&'static TableSpec, Vec<Vec<Cell>>)>) -> String {
        let keys = tables.iter().find(|(t, _)| t.name == "blobs").map(|(_, r)| keys_of(r)).unwrap_or_default();
        self.register_with(tables, keys)
    }

    fn register_with(&self, tables: Vec<(&'static TableSpec, Vec<Vec<Cell>>)>, keys: HashSet<String>) -> String {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let id = format!("snap-{n}");
        self.map.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), Arc::new(Snapshot { tables, keys }));
        id
    }

    /// Whether some snapshot names this content key (its object must stay).
    pub fn pins(&self, key: &str) -> bool {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).values().any(|s| s.keys.contains(key))
    }
}

async fn all_rows(svc: &Service, table: &'static TableSpec) -> Result<Vec<Vec<Cell>>> {
    let mut rows = Vec::new();
    loop {
        let page = svc.meta.export_rows(table, rows.len() as u64, PAGE).await?;
        let n = page.len();
        rows.extend(page);
        if n < PAGE {
            return Ok(rows);
        }
    }
}

fn keys_of(rows: &[Vec<Cell>]) -> HashSet<String> {
    rows.iter()
        .filter_map(|r| match r.first() {
            Some(Cell::Text(k)) => Some(k.clone()),
            _ => None,
        })
        .collect()
}

fn blobs_table() -> &'static TableSpec {
    TABLES.iter().find(|t| t.name == "blobs").expect("the blobs table")
}

impl Service {
    /// Takes a snapshot of everything (users, apps, grants, tokens, the tree); its id.
    pub async fn take_snapshot(&self) -> Result<String> {
        let mut tables = Vec::with_capacity(TABLES.len());
        for t in TABLES {
            tables.push((t, all_rows(self, t).await?));
        }
        // A snapshot keeps the objects of the keys it names: a key claimed ahead, before the
        // rows were read, and written after would keep content the snapshot never knew.
        self.claimed.clear();
        Ok(self.snapshots.register(tables))
    }

    /// Puts everything back as it was when snapshot `id` was taken; `NotFound` if unknown.
    pub async fn restore_snapshot(&self, id: &str) -> Result<()> {
        let snap = self.snapshots.map.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned();
        let snap = snap.ok_or_else(|| Error::NotFound(format!("snapshot {id}")))?;
        let before = keys_of(&all_rows(self, blobs_table()).await?);
        self.meta.replace_all(snap.tables.clone()).await?;
        self.claimed.clear();
        // Content written since, that nothing names any more.
        let gone: Vec<String> = before.into_iter().filter(|k| !snap.keys.contains(k)).collect();
        self.drop_blobs(gone).await;
        self.forget_rate_limits();
        self.forget_login_failures();
        Ok(())
    }

    /// Forgets a snapshot; the content only it named is deleted. `NotFound` if unknown.
    pub async fn delete_snapshot(&self, id: &str) -> Result<()> {
        let snap = self.snapshots.map.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
        let snap = snap.ok_or_else(|| Error::NotFound(format!("snapshot {id}")))?;
        let live = keys_of(&all_rows(self, blobs_table()).await?);
        let gone: Vec<String> = snap.keys.iter().filter(|k| !live.contains(*k)).cloned().collect();
        self.drop_blobs(gone).await;
        Ok(())
    }
}

/// The version tag of a snapshot's manifest (`snapshot.json` of an archive).
const FORMAT: &str = "ocloud-snapshot/1";

/// A cell as JSON: null, a number, a string, or `{"hex": …}` for bytes.
fn cell_json(c: &Cell) -> serde_json::Value {
    match c {
        Cell::Null => serde_json::Value::Null,
        Cell::Int(i) => serde_json::json!(i),
        Cell::Text(t) => serde_json::json!(t),
        Cell::Bytes(b) => serde_json::json!({"hex": super::auth::hex(b)}),
    }
}

fn cell_of(v: &serde_json::Value) -> Option<Cell> {
    Some(match v {
        serde_json::Value::Null => Cell::Null,
        serde_json::Value::Number(n) => Cell::Int(n.as_i64()?),
        serde_json::Value::String(s) => Cell::Text(s.clone()),
        serde_json::Value::Object(o) => {
            let hex = o.get("hex")?.as_str()?;
            let bytes: Option<Vec<u8>> = (0..hex.len())
                .step_by(2)
                .map(|i| hex.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
                .collect();
            Cell::Bytes(bytes?)
        }
        _ => return None,
    })
}

/// Whether `key` has the shape of a content key this service makes (32 lower-case hex
/// characters): the only keys an archive may write.
pub fn is_content_key(key: &str) -> bool {
    key.len() == 32 && key.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A snapshot as an archive holds it.
pub struct Manifest {
    /// Every table's rows, as JSON (`snapshot.json`).
    pub json: Vec<u8>,
    /// The content objects it names with their sizes, in key order.
    pub contents: Vec<(String, u64)>,
}

impl Service {
    /// Snapshot `id` as an archive's manifest (every table's rows, as JSON), and the content
    /// it names with each object's size (from its files), in key order.
    pub fn snapshot_manifest(&self, id: &str) -> Result<Manifest> {
        let snap = self.snapshots.map.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned();
        let snap = snap.ok_or_else(|| Error::NotFound(format!("snapshot {id}")))?;
        let mut tables = serde_json::Map::new();
        let mut sizes = std::collections::BTreeMap::new();
        for (t, rows) in &snap.tables {
            let json: Vec<Vec<serde_json::Value>> = rows.iter().map(|r| r.iter().map(cell_json).collect()).collect();
            tables.insert(t.name.to_owned(), serde_json::json!(json));
            if t.name == "nodes" {
                let col = |name: &str| t.columns.iter().position(|(c, _)| *c == name);
                let (Some(blob), Some(size)) = (col("blob"), col("size")) else { continue };
                for r in rows {
                    if let (Some(Cell::Text(k)), Some(Cell::Int(n))) = (r.get(blob), r.get(size)) {
                        sizes.insert(k.clone(), *n as u64);
                    }
                }
            }
        }
        let manifest = serde_json::json!({"format": FORMAT, "tables": tables});
        Ok(Manifest { json: serde_json::to_vec(&manifest).unwrap_or_default(), contents: sizes.into_iter().collect() })
    }

    /// Registers a snapshot read from an archive's manifest (its content already stored);
    /// its id. Every table must be there with rows of the right width; `Err` says what is
    /// wrong with it.
    pub fn import_snapshot(&self, manifest: &[u8]) -> std::result::Result<String, String> {
        let bad = |why: String| format!("not an ocloud snapshot: {why}");
        let doc: serde_json::Value = serde_json::from_slice(manifest).map_err(|e| bad(e.to_string()))?;
        if doc["format"] != FORMAT {
            return Err(bad(format!("format {} (this service reads {FORMAT})", doc["format"])));
        }
        let mut tables = Vec::with_capacity(TABLES.len());
        for t in TABLES {
            let rows = doc["tables"][t.name].as_array().ok_or_else(|| bad(format!("no table {}", t.name)))?;
            let rows: Option<Vec<Vec<Cell>>> = rows
                .iter()
                .map(|r| {
                    let cells = r.as_array().filter(|c| c.len() == t.columns.len())?;
                    cells.iter().map(cell_of).collect()
                })
                .collect();
            tables.push((t, rows.ok_or_else(|| bad(format!("a row of {} is malformed", t.name)))?));
        }
        let keys = tables.iter().find(|(t, _)| t.name == "blobs").map(|(_, r)| keys_of(r)).unwrap_or_default();
        if let Some(k) = keys.iter().find(|k| !is_content_key(k)) {
            return Err(bad(format!("content key {k:?}")));
        }
        Ok(self.snapshots.register_with(tables, keys))
    }
}
