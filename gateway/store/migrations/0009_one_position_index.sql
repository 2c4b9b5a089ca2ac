-- A position's register rows and ESR assignments were indexed twice: by (vpd, position_number)
-- since 0002, and by position_number alone since 0007 (the per-window reads ask by number across
-- every VPD). The one-position questions asked outside a window (vpd = ? AND position_number = ?)
-- are answered by the number's index as well: a number names one post, or a few across VPDs.
-- Every register row a placement file writes, and every assignment a person extract writes,
-- paid for the second index (issue 13, tenth round: ~3% of a national placements file).
-- tests/test_store.py holds those questions to an index search.
DROP INDEX applicants_position;
DROP INDEX assignments_position;
