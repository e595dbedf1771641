-- Blob keys are claimed before an upload and kept, unreferenced, after a delete until their
-- objects are gone: orphans are found here, never by listing the content store.
ALTER TABLE blobs ADD COLUMN since INTEGER NOT NULL DEFAULT 0;
ALTER TABLE blobs ADD COLUMN reaping INTEGER NOT NULL DEFAULT 0;
CREATE INDEX blobs_unreferenced ON blobs(since) WHERE refs <= 0;
