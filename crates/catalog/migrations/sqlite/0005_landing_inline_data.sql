-- v5: small files' data kept with their landing notes until settled.
ALTER TABLE landing ADD COLUMN data BLOB;
