-- v16: quotas per storage group, as Enstore has them: logical bytes and
-- files in the namespace (one count whatever the number of tape copies),
-- and volumes per library.
CREATE TABLE quotas (
    storage_group TEXT COLLATE "C" PRIMARY KEY,
    max_bytes BIGINT,
    max_files BIGINT
);
CREATE TABLE quota_volumes (
    storage_group TEXT NOT NULL,
    library TEXT NOT NULL,
    max_volumes INTEGER NOT NULL,
    PRIMARY KEY (storage_group, library)
);
-- What each storage group holds, kept by every commit and removal.
CREATE TABLE group_usage (
    storage_group TEXT COLLATE "C" PRIMARY KEY,
    files BIGINT NOT NULL,
    bytes BIGINT NOT NULL
);
INSERT INTO group_usage (storage_group, files, bytes)
    SELECT COALESCE(storage_group, 'default'), COUNT(*), COALESCE(SUM(size), 0)
    FROM nodes WHERE kind = 2 GROUP BY 1;
