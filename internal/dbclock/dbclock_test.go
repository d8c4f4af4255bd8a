package dbclock_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/dbclock"
)

// skewed is a machine clock off the true time by a fixed amount.
type skewed time.Duration

func (s skewed) Now() time.Time { return time.Now().Add(time.Duration(s)) }

// A machine whose clock is minutes off, either way, tells the database's
// time once synced, and says in its log that its clock is off.
func TestSkewedMachineKeepsTheDatabasesTime(t *testing.T) {
	for _, skew := range []time.Duration{-7 * time.Minute, 3 * time.Minute} {
		var logged bytes.Buffer
		db := func(context.Context) (time.Time, error) { return time.Now(), nil }
		c, err := dbclock.New(context.Background(), skewed(skew), db, slog.New(slog.NewTextHandler(&logged, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if d := c.Now().Sub(time.Now()); d.Abs() > time.Second {
			t.Errorf("skew %v: the clock is %v off the database's", skew, d)
		}
		if d := c.Offset() + skew; d.Abs() > time.Second {
			t.Errorf("skew %v: offset %v", skew, c.Offset())
		}
		if !strings.Contains(logged.String(), "clock is off the database's") {
			t.Errorf("skew %v: nothing logged: %q", skew, logged.String())
		}
	}
}

// A machine on time logs nothing; a database that stops answering leaves
// the last difference in place, and one that never answered stops the
// clock from being made.
func TestDatabaseSilent(t *testing.T) {
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	answer := true
	db := func(context.Context) (time.Time, error) {
		if !answer {
			return time.Time{}, errors.New("down")
		}
		return time.Now().Add(2 * time.Minute), nil
	}
	c, err := dbclock.New(context.Background(), skewed(0), db, log)
	if err != nil {
		t.Fatal(err)
	}
	answer = false
	if err := c.Sync(context.Background()); err == nil {
		t.Error("a failed measurement is not reported")
	}
	if d := c.Offset() - 2*time.Minute; d.Abs() > time.Second {
		t.Errorf("offset after a failed measurement: %v, want the last one", c.Offset())
	}
	if _, err := dbclock.New(context.Background(), skewed(0), db, log); err == nil {
		t.Error("a clock made without ever reading the database")
	}

	logged.Reset()
	onTime := func(context.Context) (time.Time, error) { return time.Now(), nil }
	if _, err := dbclock.New(context.Background(), skewed(0), onTime, log); err != nil {
		t.Fatal(err)
	}
	if logged.Len() != 0 {
		t.Errorf("a clock on time logged %q", logged.String())
	}
}
