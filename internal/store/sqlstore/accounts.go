package sqlstore

import (
	"database/sql"

	"github.com/portico-dev/portico/internal/username"
)

// keyUsernames gives the accounts made before names were keyed their key
// and skeleton, oldest first. Of two names with one key ("Alice" and
// "alice"), the older account keeps the key; the younger, and a name that
// has no key, keep none: each stays reachable by its exact name (User
// tries that first), and nobody new can take a name with a key that is
// taken. So nobody is lost in the upgrade, and nobody gains an account.
func keyUsernames(tx *Tx) error {
	type account struct {
		id   int64
		name string
	}
	rows, err := tx.query(`SELECT id, username FROM users ORDER BY id`)
	if err != nil {
		return err
	}
	var all []account
	for rows.Next() {
		var a account
		if err := rows.Scan(&a.id, &a.name); err != nil {
			rows.Close()
			return tx.wrap(err)
		}
		all = append(all, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return tx.wrap(err)
	}
	taken := map[string]bool{}
	for _, a := range all {
		var key sql.NullString
		if k, err := username.Key(a.name); err == nil && !taken[k] {
			taken[k], key = true, sql.NullString{String: k, Valid: true}
		}
		if _, err := tx.Exec(`UPDATE users SET username_key = ?, skeleton = ? WHERE id = ?`,
			key, username.Skeleton(a.name), a.id); err != nil {
			return err
		}
	}
	return nil
}
