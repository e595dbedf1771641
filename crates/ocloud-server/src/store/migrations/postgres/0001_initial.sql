-- The whole schema as of the first PostgreSQL release of ocloud. Times are unix ms or s
-- written by the service (its injected clock); no column defaults to now().
CREATE TABLE users(
  id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE, password_hash TEXT, quota BIGINT,
  used BIGINT NOT NULL DEFAULT 0, disabled BOOLEAN NOT NULL DEFAULT FALSE, created BIGINT NOT NULL);
CREATE TABLE apps(
  id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE, client_id TEXT NOT NULL UNIQUE,
  secret_hash TEXT, redirect_uris TEXT NOT NULL DEFAULT '[]', scopes TEXT NOT NULL DEFAULT '',
  rate_limit INTEGER, disabled BOOLEAN NOT NULL DEFAULT FALSE, created BIGINT NOT NULL);
CREATE TABLE tokens(
  hash BYTEA PRIMARY KEY, kind TEXT NOT NULL, user_id BIGINT NOT NULL, app_id BIGINT NOT NULL,
  scope TEXT NOT NULL, expires_at BIGINT NOT NULL, revoked BOOLEAN NOT NULL DEFAULT FALSE,
  grant_id TEXT NOT NULL DEFAULT '');
CREATE INDEX tokens_grant ON tokens(grant_id);
CREATE TABLE codes(
  hash BYTEA PRIMARY KEY, app_id BIGINT NOT NULL, user_id BIGINT NOT NULL, redirect_uri TEXT NOT NULL,
  scope TEXT NOT NULL, code_challenge TEXT, expires_at BIGINT NOT NULL, used BOOLEAN NOT NULL DEFAULT FALSE);
CREATE TABLE consents(
  user_id BIGINT NOT NULL, app_id BIGINT NOT NULL, scope TEXT NOT NULL, PRIMARY KEY(user_id, app_id));
CREATE TABLE upload_urls(
  hash BYTEA PRIMARY KEY, cookie_hash BYTEA NOT NULL, user_id BIGINT NOT NULL, app_id BIGINT NOT NULL,
  scope TEXT NOT NULL, name TEXT NOT NULL, size BIGINT NOT NULL, expires_at BIGINT NOT NULL,
  used BOOLEAN NOT NULL DEFAULT FALSE);
CREATE TABLE web_sessions(
  hash BYTEA PRIMARY KEY, user_id BIGINT NOT NULL, csrf TEXT NOT NULL, expires_at BIGINT NOT NULL);
CREATE TABLE sessions(
  esid TEXT PRIMARY KEY, user_id BIGINT NOT NULL, expires_at BIGINT NOT NULL);
-- Names compare byte-wise (COLLATE "C"), like SQLite: listings order the same on both.
CREATE TABLE nodes(
  id BIGSERIAL PRIMARY KEY, user_id BIGINT NOT NULL, parent_id BIGINT, name TEXT COLLATE "C" NOT NULL,
  is_dir BOOLEAN NOT NULL, size BIGINT NOT NULL DEFAULT 0, blob TEXT, file_type TEXT, mime TEXT,
  metadata TEXT, created BIGINT NOT NULL, updated BIGINT NOT NULL);
CREATE UNIQUE INDEX nodes_name ON nodes(parent_id, name);
CREATE INDEX nodes_listing ON nodes(parent_id, is_dir DESC, name);
CREATE UNIQUE INDEX nodes_root ON nodes(user_id) WHERE parent_id IS NULL;
CREATE INDEX nodes_blob ON nodes(blob);
CREATE TABLE secrets(name TEXT PRIMARY KEY, value BYTEA NOT NULL);
CREATE TABLE blobs(
  key TEXT COLLATE "C" PRIMARY KEY, refs BIGINT NOT NULL, since BIGINT NOT NULL DEFAULT 0,
  reaping BOOLEAN NOT NULL DEFAULT FALSE);
CREATE INDEX blobs_unreferenced ON blobs(since) WHERE refs <= 0;
-- Bumped after every commit that changes anything: instances compare it to keep their
-- caches coherent.
CREATE SEQUENCE generation;
-- Failed sign-ins per account and per address (the login throttle), shared by the instances.
CREATE TABLE login_failures(key TEXT PRIMARY KEY, count INTEGER NOT NULL, last BIGINT NOT NULL,
  wait_until BIGINT NOT NULL);
-- Leases of background work: one instance runs a job per period.
CREATE TABLE leases(name TEXT PRIMARY KEY, holder TEXT NOT NULL, until BIGINT NOT NULL);
-- Rate-limit buckets shared by the instances (GCRA: theoretical arrival time, unix ms).
CREATE TABLE rate_limits(app_id BIGINT NOT NULL, user_id BIGINT NOT NULL, tat BIGINT NOT NULL,
  PRIMARY KEY(app_id, user_id));
SELECT setval('generation', 1);
