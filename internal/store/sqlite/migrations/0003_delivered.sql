-- Whether the session host has been given its owner and request parameters.
ALTER TABLE sessions ADD COLUMN delivered INTEGER NOT NULL DEFAULT 0;
CREATE INDEX sessions_undelivered ON sessions (created) WHERE owner IS NOT NULL AND delivered = 0 AND address <> '';
