-- A lease's generation is its fencing token: it grows with every change of
-- holder, and a holder's writes carry the generation it got, so that the
-- writes of a holder that lost the lease (frozen, cut off) are refused.
-- expires is now the database's own time (Unix milliseconds), never a
-- replica's. A lease held before the upgrade is in generation 1: 0 means
-- "not held" to the callers.
ALTER TABLE leases ADD COLUMN generation INTEGER NOT NULL DEFAULT 1;
