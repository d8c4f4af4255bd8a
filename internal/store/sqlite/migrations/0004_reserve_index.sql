-- Claiming a reserved session reads the first row of this index instead of
-- sorting the reserve; the owner index matches its query's terms.
CREATE INDEX sessions_reserve ON sessions (env_id, state DESC, created, name) WHERE owner IS NULL AND attempts = 0;
DROP INDEX sessions_undelivered;
CREATE INDEX sessions_undelivered ON sessions (created) WHERE owner IS NOT NULL AND NOT delivered AND address <> '';
