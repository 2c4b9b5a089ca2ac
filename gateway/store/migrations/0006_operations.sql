-- Operating it (issue 12, spec 10).

-- Records by flow, result, reason and VPD of each file, written in the file's own transaction:
-- /metrics and the status page count from here, so the counts survive restarts and agree with
-- the acknowledgements.
CREATE TABLE outcome_counts (
    receipt_id INTEGER NOT NULL,
    flow       TEXT NOT NULL,
    result     TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    vpd        TEXT NOT NULL DEFAULT '',
    count      BIGINT NOT NULL,
    PRIMARY KEY (receipt_id, flow, result, reason, vpd)
);

-- The document kind and VPD of a processed file (for [[expect]] by VPD).
ALTER TABLE receipts ADD COLUMN kind TEXT;
ALTER TABLE receipts ADD COLUMN vpd TEXT;
CREATE INDEX receipts_finished ON receipts (channel, finished_at);

-- The rotation grid last written per VPD: written again only when its rows change.
CREATE TABLE rotation_grids (
    vpd         TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    written_on  TEXT NOT NULL
);
