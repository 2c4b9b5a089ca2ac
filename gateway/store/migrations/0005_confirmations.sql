-- Closing the loop with ESR (issue 11, spec 6.5).

-- The applicant register keeps, per (placement, VPD), the load file and record it last went in,
-- the action sent, ESR's state of it ('sent', 'in ESR', 'failed') and what ESR answered.
ALTER TABLE applicants ADD COLUMN load_file TEXT;
ALTER TABLE applicants ADD COLUMN load_record INTEGER;
ALTER TABLE applicants ADD COLUMN last_action TEXT;
ALTER TABLE applicants ADD COLUMN esr_state TEXT NOT NULL DEFAULT 'sent';
ALTER TABLE applicants ADD COLUMN applicant_number TEXT;
ALTER TABLE applicants ADD COLUMN assignment_id TEXT;
ALTER TABLE applicants ADD COLUMN esr_message TEXT;
CREATE INDEX applicants_state ON applicants (esr_state);

-- Every applicant load file written (R1, R6): its records and what ESR confirmed of each.
CREATE TABLE load_files (
    vpd             TEXT NOT NULL,
    name            TEXT NOT NULL,
    written_at      TEXT NOT NULL,   -- the run's time (docs/decisions.md): R6 counts from here
    source_file     TEXT NOT NULL,
    records         INTEGER NOT NULL,
    unconfirmed_at  TEXT,            -- when LOAD_UNCONFIRMED was raised (once)
    PRIMARY KEY (vpd, name)
);
CREATE TABLE load_records (
    vpd             TEXT NOT NULL,
    load_file       TEXT NOT NULL,
    placement_id    TEXT NOT NULL,
    action          TEXT NOT NULL,
    record          INTEGER NOT NULL,  -- 1-based position in the file
    dpn             TEXT NOT NULL,
    position_number TEXT NOT NULL,
    status          TEXT,              -- NULL until confirmed: 'SUCCESS' | 'FAIL'
    confirmed_at    TEXT,
    PRIMARY KEY (vpd, load_file, placement_id, action)
);
CREATE INDEX load_records_open ON load_records (vpd, load_file, status);

-- R7: the last version of every placement ESR failed or the rules rejected, to re-send.
CREATE TABLE resendable (
    placement_id TEXT PRIMARY KEY,
    vpd          TEXT,                -- the VPD that failed it, or the rejection's VPD if known
    cause        TEXT NOT NULL,       -- 'failed' | 'rejected'
    reason       TEXT,                -- the reason code of a rejection
    data         TEXT NOT NULL,       -- the Placement as received
    kept_at      TEXT NOT NULL
);

-- The n of resend-<date>-<n>: allocated under the work lock, recorded in the resend's commit.
CREATE TABLE resends (
    day TEXT NOT NULL,
    n   INTEGER NOT NULL,
    at  TEXT NOT NULL,
    PRIMARY KEY (day, n)
);

-- requeue: a quarantined file taken through the pipeline again names the receipt it came from.
ALTER TABLE receipts ADD COLUMN requeued_from INTEGER;
