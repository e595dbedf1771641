//! Versioned schema migrations, for both databases.
//!
//! Each backend has an ordered list of SQL scripts, embedded in the binary; the database
//! records how many were applied (SQLite: `PRAGMA user_version`; PostgreSQL: the
//! `schema_version` table). On open, the missing ones run in one transaction (on PostgreSQL
//! under an advisory lock, so instances starting together migrate once). A database whose
//! version is newer than the binary knows is refused: an older ocloud must not write to a
//! schema it does not understand.

/// SQLite scripts, in order; version N means the first N ran.
pub const SQLITE: &[&str] = &[
    include_str!("migrations/sqlite/0001_initial.sql"),
    include_str!("migrations/sqlite/0002_blob_lifecycle.sql"),
    include_str!("migrations/sqlite/0003_leases.sql"),
];

/// PostgreSQL scripts, in order.
pub const POSTGRES: &[&str] = &[include_str!("migrations/postgres/0001_initial.sql")];

/// The scripts to run on a database at `version`, or the refusal of a newer one.
pub fn pending(scripts: &'static [&'static str], version: i64, what: &str) -> anyhow::Result<&'static [&'static str]> {
    let known = scripts.len() as i64;
    anyhow::ensure!(
        (0..=known).contains(&version),
        "{what}: schema version {version} is newer than this ocloud knows ({known}); \
         run the ocloud version that last used it, or a newer one"
    );
    Ok(&scripts[version as usize..])
}
