package config

import (
	"errors"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The reasons read after the offending value: `"ten minutes" is not a duration ...`.
var (
	errNotDuration = errors.New("is not a duration (use 30, 30s, 10m or 2h)")
	errTooLong     = errors.New("is too long")
)

var durationSyntax = regexp.MustCompile(`^([+-]?[0-9]+)([smhSMH]?)$`)

// parseDuration reads a duration the way Educates does: an integer number of
// seconds, or an integer followed by s, m or h. Negative durations are zero.
func parseDuration(s string) (time.Duration, error) {
	m := durationSyntax.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, errNotDuration
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		if n < 0 { // ParseInt saturates: a huge negative number is still negative
			return 0, nil
		}
		return 0, errTooLong
	}
	unit := time.Second
	switch strings.ToLower(m[2]) {
	case "m":
		unit = time.Minute
	case "h":
		unit = time.Hour
	}
	return seconds(n, unit)
}

// seconds is n units, zero when n is negative.
func seconds(n int64, unit time.Duration) (time.Duration, error) {
	if n <= 0 {
		return 0, nil
	}
	if n > math.MaxInt64/int64(unit) {
		return 0, errTooLong
	}
	return time.Duration(n) * unit, nil
}
