-- Accounts are unique by the normalised form of their name (username_key:
-- PRECIS UsernameCaseMapped, made by the store, see sqlstore.keyUsernames),
-- carry the skeleton that tells look-alike names, and record where they
-- came from: sign-up, anonymous, the portal definition (portal), or a
-- robot client's session request (client, and which client).
--
-- Existing rows get their key and skeleton from the Go step of this
-- migration. A name without a normalised form, or whose form an older
-- account has already, keeps a NULL key: that account stays reachable by
-- its exact name only, and nobody new can take a name that normalises
-- like it.
--
-- Their origin follows from their role. Anonymous accounts were made by
-- session requests of the robot (or are anonymous visitors' accounts,
-- named by UUIDs that nobody else knows): they are attributed to the
-- robot's client, so front ends keep reaching their own users.
ALTER TABLE users ADD COLUMN username_key TEXT;
ALTER TABLE users ADD COLUMN skeleton TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN origin TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN origin_client TEXT NOT NULL DEFAULT '';
UPDATE users SET origin = CASE role
	WHEN 'admin' THEN 'portal' WHEN 'robot' THEN 'portal' WHEN 'registered' THEN 'signup' ELSE 'client' END;
UPDATE users SET origin_client = COALESCE((SELECT c.id FROM clients c JOIN users r ON r.id = c.user_id
	WHERE r.role = 'robot' ORDER BY c.id LIMIT 1), '') WHERE origin = 'client';
UPDATE users SET origin = 'anonymous' WHERE origin = 'client' AND origin_client = '';
CREATE UNIQUE INDEX users_key ON users (username_key);
CREATE INDEX users_skeleton ON users (skeleton);
