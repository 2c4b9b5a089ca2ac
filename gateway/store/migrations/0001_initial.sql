-- Ledger: one row per inbound file received (duplicates included).
CREATE TABLE receipts (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL,
    channel         TEXT NOT NULL,
    sha256          TEXT NOT NULL,
    processing_path TEXT NOT NULL,
    ack_name        TEXT NOT NULL,
    status          TEXT NOT NULL,          -- claimed | processed | rejected | duplicate
    code            TEXT,
    duplicate_of    TEXT,
    claimed_at      TEXT NOT NULL,
    finished_at     TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    totals          TEXT,
    closed          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX receipts_sha ON receipts (sha256, status);
CREATE INDEX receipts_open ON receipts (closed, processing_path);
CREATE UNIQUE INDEX receipts_ack ON receipts (ack_name);

-- Outputs committed with a file but perhaps not yet renamed into place (crash recovery).
CREATE TABLE pending_outputs (
    receipt_id INTEGER NOT NULL,
    temp_path  TEXT NOT NULL,
    final_path TEXT NOT NULL,
    PRIMARY KEY (receipt_id, final_path)
);

-- The position register, per VPD.
CREATE TABLE positions (
    vpd             TEXT NOT NULL,
    esr_position_id BIGINT NOT NULL,
    dpn             TEXT,
    data            TEXT NOT NULL,
    PRIMARY KEY (vpd, esr_position_id)
);
CREATE INDEX positions_dpn ON positions (dpn);

-- Every DPN ever seen in a VPD (P4: NEW_DPN).
CREATE TABLE dpns_seen (
    vpd        TEXT NOT NULL,
    dpn        TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    PRIMARY KEY (vpd, dpn)
);

-- What was on the interface at the last TIS position extract of a VPD (P6: POST_REMOVED).
CREATE TABLE interface_posts (
    vpd             TEXT NOT NULL,
    esr_position_id BIGINT NOT NULL,
    dpn             TEXT NOT NULL,
    deanery         TEXT NOT NULL,
    PRIMARY KEY (vpd, esr_position_id)
);

-- The last extract written per (kind, VPD, deanery), for status.
CREATE TABLE extracts (
    kind         TEXT NOT NULL,
    vpd          TEXT NOT NULL,
    deanery      TEXT NOT NULL,
    extract_date TEXT NOT NULL,
    path         TEXT NOT NULL,
    written_at   TEXT NOT NULL,
    PRIMARY KEY (kind, vpd, deanery)
);

-- Scheduled jobs: when each last ran (as a date or week key).
CREATE TABLE jobs (
    name     TEXT PRIMARY KEY,
    last_run TEXT NOT NULL
);
