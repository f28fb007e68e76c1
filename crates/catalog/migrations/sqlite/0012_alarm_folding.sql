-- v12: an alarm folds its repeats and is acknowledged. `time` is when it
-- was first raised, `last_time` the latest repeat, `count` how many times;
-- a raise of the same severity, source and message as an alarm not yet
-- acknowledged counts into it. Acknowledged alarms are kept (`--all`).
ALTER TABLE alarms ADD COLUMN last_time INTEGER;
UPDATE alarms SET last_time = time;
ALTER TABLE alarms ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
ALTER TABLE alarms ADD COLUMN acked_at INTEGER;
ALTER TABLE alarms ADD COLUMN acked_by TEXT;
CREATE INDEX alarms_open ON alarms (source, message) WHERE acked_at IS NULL;
