-- v10: a stage request holds its files in the cache itself. Each of its
-- rows keeps its file from being purged until `held_until` (NULL once
-- released), in place of one pin row per file: a 100,000-file request
-- wrote 100,000 pins as well. Pins the requests took are carried over.
ALTER TABLE stage_files ADD COLUMN held_until BIGINT;
UPDATE stage_files SET held_until = (SELECT MAX(p.expires) FROM pins p
    WHERE p.file_id = stage_files.file_id AND p.owner = 'stage-request-' || stage_files.request);
DELETE FROM pins WHERE owner LIKE 'stage-request-%';
CREATE INDEX stage_files_held ON stage_files (file_id) WHERE held_until IS NOT NULL;
-- A request's files are written with it, in its transaction, and deleted
-- before it: the foreign key from stage_files to stage_requests guarded
-- nothing the code does not, and checked it row by row (1.2 s of the 2.3 s
-- a 100,000-file request took to insert; SQLite's check costs little and
-- stays).
ALTER TABLE stage_files DROP CONSTRAINT IF EXISTS stage_files_request_fkey;
