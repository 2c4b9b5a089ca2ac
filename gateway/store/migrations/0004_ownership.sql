-- Claims owned in the store (issue 9): who holds an open receipt, until when, and where its file
-- came from (so that recovery can tell whether a claim's rename happened).
ALTER TABLE receipts ADD COLUMN original_name TEXT;      -- the name as the partner sent it
ALTER TABLE receipts ADD COLUMN owner TEXT;              -- host:pid:start of the holding process
ALTER TABLE receipts ADD COLUMN lease_until DOUBLE PRECISION;  -- unix time; renewed while held
ALTER TABLE receipts ADD COLUMN source_path TEXT;        -- where the file was claimed from
ALTER TABLE receipts ADD COLUMN source_ino BIGINT;       -- its inode there (a move keeps it)
CREATE INDEX receipts_owner ON receipts (owner, closed);

-- Outputs are published only if the temporary file is the one written (same inode and size).
ALTER TABLE pending_outputs ADD COLUMN ino BIGINT;
ALTER TABLE pending_outputs ADD COLUMN size BIGINT;

-- The store's identity, also written to var/.store-id: an emptied or foreign store is refused.
CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
