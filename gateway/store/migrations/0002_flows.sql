-- ESR persons per VPD (the latest person extract replaces the VPD's persons).
CREATE TABLE persons (
    vpd           TEXT NOT NULL,
    esr_person_id TEXT NOT NULL,
    date_of_birth TEXT NOT NULL,
    data          TEXT NOT NULL,
    PRIMARY KEY (vpd, esr_person_id)
);
CREATE INDEX persons_dob ON persons (vpd, date_of_birth);

-- Their assignments, by position, for occupancy (A7).
CREATE TABLE assignments (
    vpd             TEXT NOT NULL,
    position_number TEXT NOT NULL,
    esr_person_id   TEXT NOT NULL,
    status          TEXT NOT NULL,
    start_date      TEXT NOT NULL,
    end_date        TEXT
);
CREATE INDEX assignments_position ON assignments (vpd, position_number);
CREATE INDEX assignments_person ON assignments (vpd, esr_person_id);

-- The applicant register: what was last sent for a placement to a VPD (A10, A11, C2).
CREATE TABLE applicants (
    placement_id    TEXT NOT NULL,
    vpd             TEXT NOT NULL,
    tis_person_id   TEXT NOT NULL,
    position_number TEXT NOT NULL,
    date_of_birth   TEXT NOT NULL,
    withdrawn       INTEGER NOT NULL,
    data            TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (placement_id, vpd)
);
CREATE INDEX applicants_position ON applicants (vpd, position_number);
CREATE INDEX applicants_dob ON applicants (vpd, date_of_birth);

-- Placements held until 13 weeks before their start (A3).
CREATE TABLE held_placements (
    placement_id  TEXT PRIMARY KEY,
    due           TEXT NOT NULL,
    data          TEXT NOT NULL,
    source_file   TEXT NOT NULL,
    source_sha256 TEXT NOT NULL,
    held_at       TEXT NOT NULL
);

-- Trac check transfers: once per applicant (C3).
CREATE TABLE check_transfers (
    vpd               TEXT NOT NULL,
    placement_id      TEXT NOT NULL,
    trac_applicant_id TEXT NOT NULL,
    source_sha256     TEXT NOT NULL,
    transferred_at    TEXT NOT NULL,
    PRIMARY KEY (vpd, placement_id)
);

-- Person update: the fingerprint of what was last sent per person per VPD (U2).
CREATE TABLE person_fingerprints (
    vpd           TEXT NOT NULL,
    esr_person_id TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    in_scope      INTEGER NOT NULL,
    sent_at       TEXT NOT NULL,
    PRIMARY KEY (vpd, esr_person_id)
);
