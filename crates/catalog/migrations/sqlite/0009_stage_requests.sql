-- v9: stage requests. A request and each of its files are rows, so that a
-- restart resumes what was pending and nothing stays STARTED; the path is
-- kept as the client sent it (it is echoed back).
CREATE TABLE stage_requests (
    id INTEGER PRIMARY KEY,
    owner TEXT NOT NULL,
    created INTEGER NOT NULL,
    started INTEGER,
    completed INTEGER,
    lifetime_s INTEGER NOT NULL
);
CREATE TABLE stage_files (
    request INTEGER NOT NULL REFERENCES stage_requests (id),
    idx INTEGER NOT NULL,
    path TEXT NOT NULL,
    file_id TEXT,
    state TEXT NOT NULL,
    error TEXT,
    started INTEGER,
    finished INTEGER,
    PRIMARY KEY (request, idx)
);
CREATE INDEX stage_files_open ON stage_files (file_id) WHERE state IN ('SUBMITTED', 'STARTED');
INSERT INTO sequences (name, next) VALUES ('stage_requests', 1);
