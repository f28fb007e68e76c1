-- v15: WebDAV as clients expect it.
-- The write_once directory tag (1 true, 0 false, NULL unset): in force on
-- a directory's whole tree, it makes its files immutable once written.
ALTER TABLE nodes ADD COLUMN write_once INTEGER;

-- Dead properties (RFC 4918 PROPPATCH): one row per property of a node,
-- its value the property element as XML that declares every namespace it
-- uses. They go with their node; an overwrite moves them to the new one.
CREATE TABLE dead_props (
    node BIGINT NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    ns TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    xml TEXT NOT NULL,
    PRIMARY KEY (node, ns, name)
);
