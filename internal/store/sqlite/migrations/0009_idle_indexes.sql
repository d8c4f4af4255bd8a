-- An idle reconciler pass finds what is due through the partial indexes
-- of the deadlines (sessions_expires, sessions_start, sessions_check).
-- SQLite has no statistics, and preferred the index on state for their
-- state terms: every pass read every WAITING and RUNNING session, and a
-- portal's idle cost grew with the sessions it held (issue 14). The index
-- on state now holds the transient states only, the ones looked up by
-- state alone; stopped sessions are found for deletion by their end.
DROP INDEX sessions_state;
CREATE INDEX sessions_transient ON sessions (state, created, name) WHERE state = 'STARTING' OR state = 'STOPPING';
CREATE INDEX sessions_stopped ON sessions (expires) WHERE state = 'STOPPED';
-- A listing of the sessions held (the catalog with sessions=true) reads
-- them in order instead of sorting thousands of rows on every request.
CREATE INDEX sessions_held ON sessions (env_id, created, name) WHERE owner IS NOT NULL;
