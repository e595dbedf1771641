-- Leases of background work: one instance runs a job per period.
CREATE TABLE leases(name TEXT PRIMARY KEY, holder TEXT NOT NULL, until INTEGER NOT NULL) WITHOUT ROWID;
