package config

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr error
	}{
		{"0", 0, nil},
		{"30", 30 * time.Second, nil},
		{"30s", 30 * time.Second, nil},
		{"30S", 30 * time.Second, nil},
		{"10m", 10 * time.Minute, nil},
		{"10M", 10 * time.Minute, nil},
		{"2h", 2 * time.Hour, nil},
		{"2H", 2 * time.Hour, nil},
		{"+5m", 5 * time.Minute, nil},
		{" 15m ", 15 * time.Minute, nil},
		{"007", 7 * time.Second, nil},
		{"-1", 0, nil},
		{"-10m", 0, nil},
		{"-99999999999999999999h", 0, nil},
		{"2562047h", 2562047 * time.Hour, nil},
		{"2562048h", 0, errTooLong},
		{"99999999999999999999", 0, errTooLong},
		{"", 0, errNotDuration},
		{"m", 0, errNotDuration},
		{"1.5h", 0, errNotDuration},
		{"1h30m", 0, errNotDuration},
		{"10 m", 0, errNotDuration},
		{"10d", 0, errNotDuration},
		{"ten minutes", 0, errNotDuration},
		{"0x10", 0, errNotDuration},
	}
	for _, tt := range tests {
		got, err := parseDuration(tt.in)
		if got != tt.want || err != tt.wantErr {
			t.Errorf("parseDuration(%q) = %v, %v; want %v, %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
