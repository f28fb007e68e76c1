-- v8: cache residency and pins. A file's cache copy may be purged once the
-- file is on tape (`cached` false) and comes back by staging; a pin holds a
-- cached file against purging until it expires, and several owners may pin
-- one file. A file's pins go with the file.
ALTER TABLE nodes ADD COLUMN cached BOOLEAN NOT NULL DEFAULT TRUE;
CREATE TABLE pins (
    file_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    created BIGINT NOT NULL,
    expires BIGINT NOT NULL,
    PRIMARY KEY (file_id, owner)
);
CREATE INDEX pins_expires ON pins (expires);
CREATE INDEX nodes_purge_order ON nodes (atime) WHERE kind = 2 AND cached;
