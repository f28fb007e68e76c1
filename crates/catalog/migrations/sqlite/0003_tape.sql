CREATE TABLE volumes (
    label TEXT PRIMARY KEY,
    library TEXT NOT NULL,
    media TEXT NOT NULL,
    capacity INTEGER NOT NULL,
    state TEXT NOT NULL,
    storage_group TEXT,
    file_family TEXT,
    wrapper TEXT,
    used INTEGER NOT NULL DEFAULT 0,
    tape_files INTEGER NOT NULL DEFAULT 0,
    mount_limit INTEGER NOT NULL,
    stats TEXT NOT NULL DEFAULT '{}',
    created INTEGER NOT NULL
);
CREATE INDEX volumes_family ON volumes(library, storage_group, file_family, wrapper);
CREATE TABLE drives (
    name TEXT PRIMARY KEY,
    library TEXT NOT NULL,
    state TEXT NOT NULL,
    stats TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE packages (
    id TEXT PRIMARY KEY,
    volume TEXT NOT NULL REFERENCES volumes(label),
    seq INTEGER NOT NULL,
    position INTEGER NOT NULL,
    size INTEGER NOT NULL,
    adler32 INTEGER NOT NULL,
    members INTEGER NOT NULL,
    created INTEGER NOT NULL
);
CREATE UNIQUE INDEX packages_volume_seq ON packages(volume, seq);
CREATE TABLE members (
    file_id TEXT NOT NULL,
    package TEXT NOT NULL REFERENCES packages(id),
    data_offset INTEGER NOT NULL,
    size INTEGER NOT NULL,
    adler32 INTEGER NOT NULL,
    PRIMARY KEY (file_id, package)
);
CREATE INDEX members_package ON members(package);
CREATE TABLE archive_jobs (
    id INTEGER PRIMARY KEY,
    state TEXT NOT NULL,
    library TEXT NOT NULL,
    storage_group TEXT NOT NULL,
    file_family TEXT NOT NULL,
    wrapper TEXT NOT NULL,
    width INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    created INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE TABLE job_files (
    job INTEGER NOT NULL REFERENCES archive_jobs(id),
    file_id TEXT NOT NULL,
    PRIMARY KEY (job, file_id)
);
CREATE INDEX job_files_file ON job_files(file_id);
CREATE TABLE alarms (
    id INTEGER PRIMARY KEY,
    time INTEGER NOT NULL,
    severity TEXT NOT NULL,
    source TEXT NOT NULL,
    message TEXT NOT NULL
);
