-- The same indexes as SQLite's 0009: an idle reconciler pass finds what is
-- due through the partial indexes of the deadlines, and the index on state
-- holds only the transient states, the ones looked up by state alone, so
-- that no plan reads every WAITING or RUNNING session on every pass
-- (issue 14). Stopped sessions are found for deletion by their end.
DROP INDEX sessions_state;
CREATE INDEX sessions_transient ON sessions (state, created, name) WHERE state = 'STARTING' OR state = 'STOPPING';
CREATE INDEX sessions_stopped ON sessions (expires) WHERE state = 'STOPPED';
-- A listing of the sessions held (the catalog with sessions=true) reads
-- them in order instead of sorting thousands of rows on every request.
CREATE INDEX sessions_held ON sessions (env_id, created, name) WHERE owner IS NOT NULL;
