-- v10: a stage request holds its files in the cache itself. Each of its
-- rows keeps its file from being purged until `held_until` (NULL once
-- released), in place of one pin row per file: a 100,000-file request
-- wrote 100,000 pins as well. Pins the requests took are carried over.
ALTER TABLE stage_files ADD COLUMN held_until INTEGER;
UPDATE stage_files SET held_until = (SELECT MAX(p.expires) FROM pins p
    WHERE p.file_id = stage_files.file_id AND p.owner = 'stage-request-' || stage_files.request);
DELETE FROM pins WHERE owner LIKE 'stage-request-%';
CREATE INDEX stage_files_held ON stage_files (file_id) WHERE held_until IS NOT NULL;
