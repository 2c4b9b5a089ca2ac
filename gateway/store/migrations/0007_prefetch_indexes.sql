-- The per-file prefetches (issue 13) ask by date of birth and by position number across every
-- VPD at once; the indexes of 0002 lead with the VPD, so each of those questions scanned its
-- whole table once per 2,000 keys.
CREATE INDEX persons_born ON persons (date_of_birth);
CREATE INDEX assignments_number ON assignments (position_number);
CREATE INDEX applicants_number ON applicants (position_number);
CREATE INDEX applicants_born ON applicants (date_of_birth);
