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
        let keys = tables.iter().find(|(t, _)| t.name == "blobs").map(|(_, r)| keys_of(r)).unwrap_or_default();
        let n = self.snapshots.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let id = format!("snap-{n}");
        self.snapshots
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), Arc::new(Snapshot { tables, keys }));
        Ok(id)
    }

    /// Puts everything back as it was when snapshot `id` was taken; `NotFound` if unknown.
    pub async fn restore_snapshot(&self, id: &str) -> Result<()> {
        let snap = self.snapshots.map.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned();
        let snap = snap.ok_or_else(|| Error::NotFound(format!("snapshot {id}")))?;
        let before = keys_of(&all_rows(self, blobs_table()).await?);
        self.meta.replace_all(snap.tables.clone()).await?;
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
