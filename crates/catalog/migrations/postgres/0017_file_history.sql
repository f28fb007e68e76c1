-- v17: each file's history (`bale history`): events by file id, in the
-- catalog's order; old ones go by age.
CREATE TABLE file_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time BIGINT NOT NULL,
    file_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    path TEXT,
    who TEXT,
    request TEXT,
    package TEXT,
    data_offset BIGINT,
    volume TEXT,
    count BIGINT NOT NULL DEFAULT 1,
    detail TEXT
);
CREATE INDEX file_events_file ON file_events (file_id, id);
CREATE INDEX file_events_time ON file_events (time);
