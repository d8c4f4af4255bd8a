-- A lease names the one replica that runs a singleton task (reconciliation)
-- until expires (Unix milliseconds); another replica takes it over once it
-- has expired.

CREATE TABLE leases (
	name    TEXT COLLATE "C" PRIMARY KEY,
	holder  TEXT    NOT NULL,
	expires BIGINT  NOT NULL
);
