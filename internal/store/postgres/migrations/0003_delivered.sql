-- Whether the session host has been given its owner and request parameters.
ALTER TABLE sessions ADD COLUMN delivered BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX sessions_undelivered ON sessions (created) WHERE owner IS NOT NULL AND NOT delivered AND address <> '';
