-- Times are Unix milliseconds (0: unset); durations are milliseconds.

CREATE TABLE users (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	username      TEXT    NOT NULL UNIQUE,
	email         TEXT    NOT NULL DEFAULT '',
	first_name    TEXT    NOT NULL DEFAULT '',
	last_name     TEXT    NOT NULL DEFAULT '',
	password_hash TEXT    NOT NULL DEFAULT '',
	role          TEXT    NOT NULL,
	created       INTEGER NOT NULL
);
CREATE INDEX users_anonymous ON users (created) WHERE role = 'anonymous';

CREATE TABLE environments (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	version  INTEGER NOT NULL DEFAULT 1,
	name     TEXT    NOT NULL UNIQUE,
	key      TEXT    NOT NULL,
	workshop TEXT    NOT NULL,
	state    TEXT    NOT NULL,
	position INTEGER NOT NULL,
	capacity INTEGER NOT NULL,
	initial  INTEGER NOT NULL,
	reserved INTEGER NOT NULL,
	expires  INTEGER NOT NULL,
	overtime INTEGER NOT NULL,
	deadline INTEGER NOT NULL,
	orphaned INTEGER NOT NULL,
	overdue  INTEGER NOT NULL,
	refresh  INTEGER NOT NULL,
	env      TEXT    NOT NULL,
	labels   TEXT    NOT NULL,
	tally    INTEGER NOT NULL DEFAULT 0,
	created  INTEGER NOT NULL
);
CREATE INDEX environments_state ON environments (state);

CREATE TABLE sessions (
	name       TEXT    PRIMARY KEY,
	version    INTEGER NOT NULL DEFAULT 1,
	sid        TEXT    NOT NULL,
	env_id     INTEGER NOT NULL REFERENCES environments (id),
	state      TEXT    NOT NULL,
	owner      INTEGER REFERENCES users (id),
	created    INTEGER NOT NULL,
	started    INTEGER NOT NULL DEFAULT 0,
	expires    INTEGER NOT NULL DEFAULT 0,
	activation INTEGER NOT NULL DEFAULT 0,
	activated  INTEGER NOT NULL DEFAULT 0,
	params     TEXT    NOT NULL DEFAULT '[]',
	index_url  TEXT    NOT NULL DEFAULT '',
	analytics  TEXT    NOT NULL DEFAULT '',
	password   TEXT    NOT NULL DEFAULT '',
	address    TEXT    NOT NULL DEFAULT '',
	failure    TEXT    NOT NULL DEFAULT '',
	attempts   INTEGER NOT NULL DEFAULT 0,
	retry_at   INTEGER NOT NULL DEFAULT 0,
	check_at   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_env ON sessions (env_id, state, owner);
CREATE INDEX sessions_owner ON sessions (owner) WHERE owner IS NOT NULL;
CREATE INDEX sessions_state ON sessions (state);
CREATE INDEX sessions_expires ON sessions (expires) WHERE expires > 0 AND state IN ('STARTING', 'WAITING', 'RUNNING');
CREATE INDEX sessions_start ON sessions (retry_at) WHERE state = 'STARTING' AND address = '';
CREATE INDEX sessions_check ON sessions (check_at) WHERE check_at > 0;

CREATE TABLE clients (
	id          TEXT    PRIMARY KEY,
	secret_hash TEXT    NOT NULL,
	user_id     INTEGER REFERENCES users (id)
);

CREATE TABLE tokens (
	hash     BLOB    PRIMARY KEY,
	kind     TEXT    NOT NULL,
	grant_id TEXT    NOT NULL,
	user_id  INTEGER NOT NULL REFERENCES users (id),
	client   TEXT    NOT NULL DEFAULT '',
	session  TEXT    NOT NULL DEFAULT '',
	expires  INTEGER NOT NULL DEFAULT 0,
	revoked  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX tokens_grant ON tokens (grant_id);
CREATE INDEX tokens_expires ON tokens (expires) WHERE expires > 0;
