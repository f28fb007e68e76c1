-- v5: small files' data kept with their landing notes until settled;
-- stored out of line and uncompressed (it is mostly compressed already).
ALTER TABLE landing ADD COLUMN data bytea; ALTER TABLE landing ALTER COLUMN data SET STORAGE EXTERNAL;
