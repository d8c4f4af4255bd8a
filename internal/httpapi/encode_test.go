package httpapi

import (
	"encoding/json"
	"testing"
	"time"
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
