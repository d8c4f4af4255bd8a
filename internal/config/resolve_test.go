package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestEntryResolution has one case per rule of spec §5.2 (and the deadline
// clamp of §5.3). Each case is the spec of a portal whose first entry is
// lab-a.
func TestEntryResolution(t *testing.T) {
	type counts struct{ capacity, reserved, initial int }
	type durations struct{ expires, overtime, deadline, orphaned, overdue, refresh time.Duration }
	tests := []struct {
		name      string
		spec      string
		counts    counts
		durations durations
	}{
		{"no capacity and no maximum: no sessions", "workshops: [{name: lab-a}]", counts{0, 0, 0}, durations{}},
		{"capacity defaults to sessions.maximum", "portal: {sessions: {maximum: 5}}\nworkshops: [{name: lab-a}]", counts{5, 1, 1}, durations{}},
		{"deprecated portal.capacity beats maximum", "portal: {capacity: 7, sessions: {maximum: 5}}\nworkshops: [{name: lab-a}]", counts{7, 1, 1}, durations{}},
		{"defaults.capacity beats portal.capacity", "portal: {capacity: 7, workshop: {defaults: {capacity: 8}}}\nworkshops: [{name: lab-a}]", counts{8, 1, 1}, durations{}},
		{"entry capacity beats defaults", "portal: {workshop: {defaults: {capacity: 8}}}\nworkshops: [{name: lab-a, capacity: 3}]", counts{3, 1, 1}, durations{}},
		{"zero capacity entry", "portal: {sessions: {maximum: 5}}\nworkshops: [{name: lab-a, capacity: 0}]", counts{0, 0, 0}, durations{}},
		{"reserved defaults to 1", "workshops: [{name: lab-a, capacity: 4}]", counts{4, 1, 1}, durations{}},
		{"reserved from defaults", "portal: {workshop: {defaults: {reserved: 2}}}\nworkshops: [{name: lab-a, capacity: 4}]", counts{4, 2, 2}, durations{}},
		{"reserved from deprecated portal.reserved", "portal: {reserved: 3}\nworkshops: [{name: lab-a, capacity: 4}]", counts{4, 3, 3}, durations{}},
		{"defaults.reserved beats portal.reserved", "portal: {reserved: 3, workshop: {defaults: {reserved: 2}}}\nworkshops: [{name: lab-a, capacity: 4}]", counts{4, 2, 2}, durations{}},
		{"entry reserved beats defaults", "portal: {workshop: {defaults: {reserved: 2}}}\nworkshops: [{name: lab-a, capacity: 4, reserved: 0}]", counts{4, 0, 0}, durations{}},
		{"default reserved clamped to capacity", "portal: {workshop: {defaults: {reserved: 5}}}\nworkshops: [{name: lab-a, capacity: 2}]", counts{2, 2, 2}, durations{}},
		{"initial defaults to reserved", "workshops: [{name: lab-a, capacity: 10, reserved: 3}]", counts{10, 3, 3}, durations{}},
		{"initial from defaults", "portal: {workshop: {defaults: {initial: 4}}}\nworkshops: [{name: lab-a, capacity: 10, reserved: 3}]", counts{10, 3, 4}, durations{}},
		{"initial from deprecated portal.initial", "portal: {initial: 6}\nworkshops: [{name: lab-a, capacity: 10}]", counts{10, 1, 6}, durations{}},
		{"default initial clamped to capacity", "portal: {workshop: {defaults: {initial: 9}}}\nworkshops: [{name: lab-a, capacity: 4, reserved: 1}]", counts{4, 1, 4}, durations{}},
		{"initial raised to reserved", "workshops: [{name: lab-a, capacity: 10, reserved: 5, initial: 2}]", counts{10, 5, 5}, durations{}},
		{"initial zero stays zero", "workshops: [{name: lab-a, capacity: 10, reserved: 5, initial: 0}]", counts{10, 5, 0}, durations{}},
		{"durations default to zero", "workshops: [{name: lab-a}]", counts{}, durations{}},
		{"durations from defaults",
			"portal: {workshop: {defaults: {expires: 1h, overtime: 10m, deadline: 2h, orphaned: 5m, overdue: 2m, refresh: 24h}}}\nworkshops: [{name: lab-a}]",
			counts{}, durations{time.Hour, 10 * time.Minute, 2 * time.Hour, 5 * time.Minute, 2 * time.Minute, 24 * time.Hour}},
		{"durations from deprecated portal settings",
			"portal: {expires: 30m, orphaned: 5m, overdue: 1m, refresh: 1h}\nworkshops: [{name: lab-a}]",
			counts{}, durations{30 * time.Minute, 0, 30 * time.Minute, 5 * time.Minute, time.Minute, time.Hour}},
		{"defaults beat deprecated durations",
			"portal: {expires: 30m, workshop: {defaults: {expires: 40m}}}\nworkshops: [{name: lab-a}]",
			counts{}, durations{expires: 40 * time.Minute, deadline: 40 * time.Minute}},
		{"entry durations beat defaults",
			"portal: {workshop: {defaults: {expires: 1h, orphaned: 5m}}}\nworkshops: [{name: lab-a, expires: 20m, orphaned: 0}]",
			counts{}, durations{expires: 20 * time.Minute, deadline: 20 * time.Minute}},
		{"zero deadline is expires", "workshops: [{name: lab-a, expires: 45m, deadline: 0}]", counts{}, durations{expires: 45 * time.Minute, deadline: 45 * time.Minute}},
		{"deadline below expires is expires", "workshops: [{name: lab-a, expires: 45m, deadline: 30m}]", counts{}, durations{expires: 45 * time.Minute, deadline: 45 * time.Minute}},
		{"deadline above expires kept", "workshops: [{name: lab-a, expires: 45m, deadline: 90m}]", counts{}, durations{expires: 45 * time.Minute, deadline: 90 * time.Minute}},
		{"deadline without expires kept", "workshops: [{name: lab-a, deadline: 90m}]", counts{}, durations{deadline: 90 * time.Minute}},
		{"integer durations are seconds", "workshops: [{name: lab-a, expires: 90, overdue: '120'}]", counts{}, durations{expires: 90 * time.Second, deadline: 90 * time.Second, overdue: 2 * time.Minute}},
		{"negative durations are zero", "workshops: [{name: lab-a, expires: -5m, orphaned: -1}]", counts{}, durations{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defs, err := loadString(t, portalDoc(tt.spec))
			if err != nil {
				t.Fatal(err)
			}
			e := defs.Portal.Entries[0]
			if got := (counts{e.Capacity, e.Reserved, e.Initial}); got != tt.counts {
				t.Errorf("capacity, reserved, initial = %v, want %v", got, tt.counts)
			}
			if got := (durations{e.Expires, e.Overtime, e.Deadline, e.Orphaned, e.Overdue, e.Refresh}); got != tt.durations {
				t.Errorf("durations = %v, want %v", got, tt.durations)
			}
		})
	}
}

// An entry's own reserve or initial count above its capacity is refused:
// Educates lowered it to the capacity without a word.
func TestEntryCountsAboveCapacityRefused(t *testing.T) {
	for _, tc := range []struct{ spec, want string }{
		{"workshops: [{name: lab-a, capacity: 10, reserved: 20}]", "spec.workshops[0].reserved: 20 is more than the capacity, 10"},
		{"portal: {workshop: {defaults: {capacity: 10}}}\nworkshops: [{name: lab-a, reserved: 20}]", "spec.workshops[0].reserved: 20 is more than the capacity, 10"},
		{"workshops: [{name: lab-a, capacity: 4, reserved: 1, initial: 9}]", "spec.workshops[0].initial: 9 is more than the capacity, 4"},
	} {
		_, err := loadString(t, portalDoc(tc.spec))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.spec, err, tc.want)
		}
	}
	// Equal is fine.
	if _, err := loadString(t, portalDoc("workshops: [{name: lab-a, capacity: 10, reserved: 10, initial: 10}]")); err != nil {
		t.Errorf("reserved and initial equal to the capacity: %v", err)
	}
}

func TestEntryEnvLabelsAndPosition(t *testing.T) {
	defs, err := loadString(t, portalDoc(`
portal:
  workshop:
    defaults:
      env:
      - {name: SHARED, value: default}
      - {name: ONLY_DEFAULT, value: d}
      labels:
      - {name: from-defaults, value: x}
workshops:
- name: lab-a
  alias: first
  env:
  - {name: SHARED, value: entry}
  - {name: ONLY_ENTRY, value: e}
  labels:
  - {name: team, value: blue}
- name: lab-a
  alias: second
`))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(defs.Portal.DefaultLabels, map[string]string{"from-defaults": "x"}) {
		t.Errorf("default labels = %v", defs.Portal.DefaultLabels)
	}
	first, second := defs.Portal.Entries[0], defs.Portal.Entries[1]
	wantEnv := []EnvVar{{"SHARED", "entry"}, {"ONLY_ENTRY", "e"}, {"ONLY_DEFAULT", "d"}}
	if !reflect.DeepEqual(first.Env, wantEnv) {
		t.Errorf("env = %+v, want %+v", first.Env, wantEnv)
	}
	if !reflect.DeepEqual(first.Labels, map[string]string{"team": "blue"}) {
		t.Errorf("labels = %v: want the entry's own", first.Labels)
	}
	if !reflect.DeepEqual(second.Env, []EnvVar{{"SHARED", "default"}, {"ONLY_DEFAULT", "d"}}) {
		t.Errorf("second env = %+v, want the defaults", second.Env)
	}
	if len(second.Labels) != 0 {
		t.Errorf("second labels = %v, want none", second.Labels)
	}
	if first.Position != 1 || second.Position != 2 || first.Key() != "first" || second.Key() != "second" {
		t.Errorf("positions and keys: %+v, %+v", first, second)
	}
}
