-- The indexes as the per-window reads ask (issue 13; tests/test_store.py holds every such read
-- to an index search, never a table scan).
--
-- Persons and applicants are asked by the (VPD, date of birth) pair since the third round, which
-- the (vpd, date_of_birth) indexes of 0002 answer: the date-only indexes of 0007 serve no
-- question any more, and cost every insert and every change of a birth date.
DROP INDEX persons_born;
DROP INDEX applicants_born;

-- C3's transfers of a window's placements were asked by placement id across every VPD, which
-- the (vpd, placement_id) key cannot answer: a scan of the whole key per 2,000 placements.
CREATE INDEX check_transfers_placement ON check_transfers (placement_id);

-- R4's failed applicants are asked by state 'failed': a few rows among every one sent. An index
-- of those alone answers it (in the order it lists them); a row sent or loaded is in none.
DROP INDEX applicants_state;
CREATE INDEX applicants_failed ON applicants (placement_id, vpd) WHERE esr_state = 'failed';
