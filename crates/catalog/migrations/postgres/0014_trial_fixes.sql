-- v14: a node's claim on the catalog names the process (one start of a
-- node: its instance), so that two processes with one node id are told
-- apart; a restart names the instance it follows, read from its data
-- directory, and takes over only that one's claim.
ALTER TABLE catalog_users ADD COLUMN instance TEXT NOT NULL DEFAULT '';

-- The directories of a tree, without its files: a move of a directory
-- to a longer path checks the longest path below it by walking these.
CREATE INDEX nodes_dirs ON nodes (parent) WHERE kind = 1;
