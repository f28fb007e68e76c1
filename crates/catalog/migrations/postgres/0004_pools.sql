CREATE TABLE pools (
    key TEXT COLLATE "C" PRIMARY KEY,
    rule TEXT NOT NULL,
    library TEXT NOT NULL,
    storage_group TEXT NOT NULL,
    file_family TEXT NOT NULL,
    wrapper TEXT NOT NULL,
    width INTEGER NOT NULL,
    target_size BIGINT NOT NULL,
    max_files INTEGER NOT NULL,
    max_wait_ms BIGINT NOT NULL
);
CREATE TABLE pool_files (
    file_id TEXT PRIMARY KEY,
    pool TEXT COLLATE "C" NOT NULL,
    size BIGINT NOT NULL,
    joined BIGINT NOT NULL
);
CREATE INDEX pool_files_pool ON pool_files(pool, joined, file_id);
ALTER TABLE archive_jobs ADD COLUMN pool TEXT;
ALTER TABLE packages ADD COLUMN dead_members INTEGER NOT NULL DEFAULT 0;
ALTER TABLE packages ADD COLUMN dead_bytes BIGINT NOT NULL DEFAULT 0;
