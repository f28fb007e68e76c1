-- v6: ids of durable work are never reused. An `INTEGER PRIMARY KEY`
-- hands out max(id) + 1, so the id of the newest job reappeared once
-- that job was gone; ids now come from counters that only grow (nodes
-- too: the access-time log and landing notes name nodes by id).
CREATE TABLE sequences (name TEXT PRIMARY KEY, next INTEGER NOT NULL);
INSERT INTO sequences SELECT 'archive_jobs', COALESCE(MAX(id), 0) + 1 FROM archive_jobs;
INSERT INTO sequences SELECT 'alarms', COALESCE(MAX(id), 0) + 1 FROM alarms;
INSERT INTO sequences SELECT 'nodes', COALESCE(MAX(id), 0) + 1 FROM nodes;
