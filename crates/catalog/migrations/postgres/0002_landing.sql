CREATE TABLE landing (
    file_id TEXT PRIMARY KEY,
    node TEXT NOT NULL
);
CREATE INDEX landing_node ON landing(node);
