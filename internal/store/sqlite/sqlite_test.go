package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/portico-dev/portico/internal/store"
	"github.com/portico-dev/portico/internal/store/sqlite"
	"github.com/portico-dev/portico/internal/store/storetest"
)

func open(t *testing.T) store.Store {
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "portico.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	storetest.Run(t, open)
}

// Opening an existing database applies no migration twice.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "portico.db")
	for range 2 {
		db, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
