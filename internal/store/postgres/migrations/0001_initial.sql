-- The schema of sqlite/migrations/0001_initial.sql in PostgreSQL's types.
-- Times are Unix milliseconds (0: unset); durations are milliseconds.
-- Names that are ordered on or looked up byte for byte use the "C"
-- collation, so both stores order them alike whatever the database's
-- locale.

CREATE TABLE users (
	id            BIGSERIAL PRIMARY KEY,
	username      TEXT COLLATE "C" NOT NULL UNIQUE,
	email         TEXT    NOT NULL DEFAULT '',
	first_name    TEXT    NOT NULL DEFAULT '',
	last_name     TEXT    NOT NULL DEFAULT '',
	password_hash TEXT    NOT NULL DEFAULT '',
	role          TEXT    NOT NULL,
	created       BIGINT  NOT NULL
);
CREATE INDEX users_anonymous ON users (created) WHERE role = 'anonymous';

CREATE TABLE environments (
	id       BIGSERIAL PRIMARY KEY,
	version  BIGINT  NOT NULL DEFAULT 1,
	name     TEXT COLLATE "C" NOT NULL UNIQUE,
	key      TEXT    NOT NULL,
	workshop TEXT    NOT NULL,
	state    TEXT    NOT NULL,
	position INTEGER NOT NULL,
	capacity INTEGER NOT NULL,
	initial  INTEGER NOT NULL,
	reserved INTEGER NOT NULL,
	expires  BIGINT  NOT NULL,
	overtime BIGINT  NOT NULL,
	deadline BIGINT  NOT NULL,
	orphaned BIGINT  NOT NULL,
	overdue  BIGINT  NOT NULL,
	refresh  BIGINT  NOT NULL,
	env      TEXT    NOT NULL,
	labels   TEXT    NOT NULL,
	tally    INTEGER NOT NULL DEFAULT 0,
	created  BIGINT  NOT NULL
);
CREATE INDEX environments_state ON environments (state);

CREATE TABLE sessions (
	name       TEXT COLLATE "C" PRIMARY KEY,
	version    BIGINT  NOT NULL DEFAULT 1,
	sid        TEXT    NOT NULL,
	env_id     BIGINT  NOT NULL REFERENCES environments (id),
	state      TEXT    NOT NULL,
	owner      BIGINT  REFERENCES users (id),
	created    BIGINT  NOT NULL,
	started    BIGINT  NOT NULL DEFAULT 0,
	expires    BIGINT  NOT NULL DEFAULT 0,
	activation BOOLEAN NOT NULL DEFAULT FALSE,
	activated  BOOLEAN NOT NULL DEFAULT FALSE,
	params     TEXT    NOT NULL DEFAULT '[]',
	index_url  TEXT    NOT NULL DEFAULT '',
	analytics  TEXT    NOT NULL DEFAULT '',
	password   TEXT    NOT NULL DEFAULT '',
	address    TEXT    NOT NULL DEFAULT '',
	failure    TEXT    NOT NULL DEFAULT '',
	attempts   INTEGER NOT NULL DEFAULT 0,
	retry_at   BIGINT  NOT NULL DEFAULT 0,
	check_at   BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX sessions_env ON sessions (env_id, state, owner);
CREATE INDEX sessions_owner ON sessions (owner) WHERE owner IS NOT NULL;
CREATE INDEX sessions_state ON sessions (state);
CREATE INDEX sessions_expires ON sessions (expires) WHERE expires > 0 AND state IN ('STARTING', 'WAITING', 'RUNNING');
CREATE INDEX sessions_start ON sessions (retry_at) WHERE state = 'STARTING' AND address = '';
CREATE INDEX sessions_check ON sessions (check_at) WHERE check_at > 0;

CREATE TABLE clients (
	id          TEXT COLLATE "C" PRIMARY KEY,
	secret_hash TEXT    NOT NULL,
	user_id     BIGINT  REFERENCES users (id)
);

CREATE TABLE tokens (
	hash     BYTEA   PRIMARY KEY,
	kind     TEXT    NOT NULL,
	grant_id TEXT    NOT NULL,
	user_id  BIGINT  NOT NULL REFERENCES users (id),
	client   TEXT    NOT NULL DEFAULT '',
	session  TEXT    NOT NULL DEFAULT '',
	expires  BIGINT  NOT NULL DEFAULT 0,
	revoked  BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX tokens_grant ON tokens (grant_id);
CREATE INDEX tokens_expires ON tokens (expires) WHERE expires > 0;
