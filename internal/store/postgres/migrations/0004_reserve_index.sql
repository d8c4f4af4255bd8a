-- Claiming a reserved session reads the first row of this index instead of
-- sorting the reserve.
CREATE INDEX sessions_reserve ON sessions (env_id, state DESC, created, name) WHERE owner IS NULL AND attempts = 0;
