package httpapi

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/broker"
	"github.com/portico-dev/portico/internal/store"
)

// Educates wrote datetimes with milliseconds and leaves them out only when
// the microseconds are zero: one time in a million. Portico keeps times to
// the millisecond, so leaving them out whenever the milliseconds are zero
// would do it one time in a thousand, and break a client that parses with
// a fixed format (strptime's %S.%fZ); it always writes them.
func TestTimeJSON(t *testing.T) {
	paris := time.FixedZone("CEST", 2*3600)
	for in, want := range map[time.Time]string{
		{}: `null`,
		time.Date(2020, 7, 31, 3, 57, 33, 942_000_000, time.UTC): `"2020-07-31T03:57:33.942Z"`,
		time.Date(2020, 7, 31, 3, 57, 33, 942_999_999, time.UTC): `"2020-07-31T03:57:33.942Z"`,
		time.Date(2020, 7, 31, 3, 57, 33, 0, time.UTC):           `"2020-07-31T03:57:33.000Z"`,
		time.Date(2020, 7, 31, 5, 57, 33, 5_000_000, paris):      `"2020-07-31T03:57:33.005Z"`,
	} {
		got, err := json.Marshal(Time(in))
		if err != nil || string(got) != want {
			t.Errorf("%v: %s %v, want %s", in, got, err, want)
		}
	}
}

// The catalog writes its sessions token by token: what it writes is what
// encoding sessionJSON with encoding/json writes, for every shape of
// session and for names that need escaping.
func TestHeldListJSON(t *testing.T) {
	paris := time.FixedZone("CEST", 2*3600)
	started := time.Date(2020, 7, 31, 5, 57, 33, 942_999_999, paris)
	list := heldList{
		{Held: store.Held{Name: "p-w01-s001", State: store.Running, OwnerName: "alice", Started: started,
			Expires: started.Add(30 * time.Minute)}, Schedule: broker.Schedule{Remaining: 1799*time.Second + 999*time.Millisecond, Extendable: true}},
		{Held: store.Held{Name: "p-w01-s002", State: store.Waiting, OwnerName: `a"b\c</script>é` + "\u2028\x01", Started: started}},
		{Held: store.Held{Name: "p-w01-s003", State: store.Stopping}},
		{Held: store.Held{Name: "p-w01-s004", State: store.Starting, OwnerName: "bob", Expires: started},
			Schedule: broker.Schedule{Remaining: 0}},
	}
	var want []sessionJSON
	for _, h := range list {
		want = append(want, sessionOf(broker.SessionView{Session: store.Session{Name: h.Name, State: h.State, OwnerName: h.OwnerName,
			Started: h.Started, Expires: h.Expires}, Schedule: h.Schedule}))
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"list", list, want},
		{"empty", heldList{}, []sessionJSON{}},
		{"in an environment", environmentJSON{Sessions: &list}, struct {
			environmentJSON
			Sessions *[]sessionJSON `json:"sessions,omitempty"`
		}{Sessions: &want}},
	} {
		// As writeJSON encodes answers.
		encode := func(v any) string {
			var b strings.Builder
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(v); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			return b.String()
		}
		if got, want := encode(c.got), encode(c.want); got != want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, want)
		}
	}
}
