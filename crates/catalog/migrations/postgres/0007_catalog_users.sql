-- v7: the node using this catalog, and when it was last seen. Several
-- nodes on one catalog are not supported yet: a node refuses to start while
-- another one's heartbeat is fresh.
CREATE TABLE catalog_users (
    node TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    started BIGINT NOT NULL,
    seen BIGINT NOT NULL
);
