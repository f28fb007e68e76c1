-- v13: several tape copies, and copies found bad.
-- A job's and a pool's `copies` are the libraries that still get a copy
-- of its files after this one, in order, comma-separated ('' for none):
-- the commit of a copy queues the next copy's job in its transaction.
-- A package found bad by a verify keeps its row with `bad` (why, and
-- since when) set; reads and purges then look only at good copies.
ALTER TABLE archive_jobs ADD COLUMN copies TEXT NOT NULL DEFAULT '';
ALTER TABLE pools ADD COLUMN copies TEXT NOT NULL DEFAULT '';
ALTER TABLE packages ADD COLUMN bad TEXT;
ALTER TABLE packages ADD COLUMN bad_since BIGINT;
-- When a verify (or the scrub) last read the package and found it good.
ALTER TABLE packages ADD COLUMN verified BIGINT;
CREATE INDEX packages_bad ON packages (bad_since) WHERE bad IS NOT NULL;
