CREATE TABLE nodes (
    id INTEGER PRIMARY KEY,
    parent INTEGER REFERENCES nodes(id),
    name TEXT NOT NULL,
    kind INTEGER NOT NULL,
    owner TEXT NOT NULL,
    grp TEXT NOT NULL,
    mode INTEGER NOT NULL,
    size INTEGER NOT NULL DEFAULT 0,
    ctime INTEGER NOT NULL,
    mtime INTEGER NOT NULL,
    atime INTEGER NOT NULL,
    file_id TEXT,
    adler32 INTEGER,
    storage_group TEXT,
    file_family TEXT,
    file_family_width INTEGER,
    wrapper TEXT,
    library TEXT
);
CREATE UNIQUE INDEX nodes_parent_name ON nodes(parent, name);
CREATE UNIQUE INDEX nodes_file_id ON nodes(file_id) WHERE file_id IS NOT NULL;
INSERT INTO nodes (id, parent, name, kind, owner, grp, mode, ctime, mtime, atime)
    VALUES (1, NULL, '', 1, 'root', 'root', 493, 0, 0, 0);
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    user_name TEXT NOT NULL,
    grp TEXT NOT NULL,
    admin INTEGER NOT NULL,
    created INTEGER NOT NULL,
    revoked INTEGER,
    comment TEXT NOT NULL DEFAULT ''
);
