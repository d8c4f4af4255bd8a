package config

import (
	"errors"
	"math"
	"math/big"
	"strings"
)

// resources checks and converts spec.session.resources.
func (d *decoder) resources(r sessionResources) Resources {
	const path = "spec.session.resources"
	var out Resources
	if r.Memory != "" {
		n, err := memoryQuantity(r.Memory)
		if err != nil {
			d.failAt(path+".memory", "%q %v", r.Memory, err)
		}
		out.Memory = n
	}
	if r.CPU != "" {
		n, err := cpuQuantity(r.CPU)
		if err != nil {
			d.failAt(path+".cpu", "%q %v", r.CPU, err)
		}
		out.CPUMilli = n
	}
	if r.Storage != "" {
		n, err := storageQuantity(r.Storage)
		if err != nil {
			d.failAt(path+".storage", "%q %v", r.Storage, err)
		}
		out.Storage = n
	}
	out.Processes = r.Processes // the decoder refuses negative numbers
	return out
}

// The reasons read after the offending value: `"lots" is not a memory quantity ...`.
var (
	errNotMemory   = errors.New("is not a memory quantity (use 512Mi, 1Gi, 1G or 500M)")
	errNotCPU      = errors.New("is not a CPU quantity (use 500m, 1 or 2)")
	errNotStorage  = errors.New("is not a storage quantity (use 5Gi, 500Mi, 5G or 500M)")
	errNegative    = errors.New("must not be negative")
	errNotPositive = errors.New("must be more than zero")
	errTooLarge    = errors.New("is too large")
	errNotQuantity = errors.New("not a quantity")
)

// memoryQuantity reads a Kubernetes quantity as a number of bytes, rounded
// up as Kubernetes does.
func memoryQuantity(s string) (int64, error) {
	q, err := parseQuantity(s)
	switch {
	case errors.Is(err, errNotQuantity):
		return 0, errNotMemory
	case err != nil:
		return 0, err
	}
	return ceilInt(q, math.MaxInt64)
}

// storageQuantity reads a Kubernetes quantity as a number of bytes, as
// memoryQuantity does, and refuses zero: a limit of nothing is no session,
// and zero in runtime.Limits means the runtime's default.
func storageQuantity(s string) (int64, error) {
	q, err := parseQuantity(s)
	switch {
	case errors.Is(err, errNotQuantity):
		return 0, errNotStorage
	case err != nil:
		return 0, err
	case q.Sign() == 0:
		return 0, errNotPositive
	}
	return ceilInt(q, math.MaxInt64)
}

// cpuQuantity reads a Kubernetes quantity of CPUs as thousandths of a CPU,
// rounded up as Kubernetes does: 500m and 0.5 are 500, 2 is 2000.
func cpuQuantity(s string) (int, error) {
	q, err := parseQuantity(s)
	switch {
	case errors.Is(err, errNotQuantity):
		return 0, errNotCPU
	case err != nil:
		return 0, err
	}
	n, err := ceilInt(q.Mul(q, big.NewRat(1000, 1)), math.MaxInt32)
	return int(n), err
}

// ceilInt rounds q up to an integer no larger than limit.
func ceilInt(q *big.Rat, limit int64) (int64, error) {
	n, rem := new(big.Int).QuoRem(q.Num(), q.Denom(), new(big.Int))
	if rem.Sign() > 0 {
		n.Add(n, big.NewInt(1))
	}
	if !n.IsInt64() || n.Int64() > limit {
		return 0, errTooLarge
	}
	return n.Int64(), nil
}

// Suffixes of Kubernetes quantities: binary multiples, and decimal ones
// (m is a thousandth; no suffix is one).
var (
	binarySuffixes  = map[string]uint{"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
	decimalSuffixes = map[string]int{"m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
)

// maxExponent bounds the decimal exponent of a quantity: beyond it, every
// non-zero value is too large for these fields anyway, and computing it
// would cost memory.
const maxExponent = 40

// parseQuantity reads a Kubernetes resource quantity: a decimal number
// (1, 0.5, .5, 2.) with an optional binary suffix (Ki … Ei), decimal suffix
// (m, k, M, G, T, P, E) or exponent (e3, E-2). Negative quantities are
// refused; errNotQuantity marks what is not a quantity at all.
func parseQuantity(s string) (*big.Rat, error) {
	if s == "" || len(s) > 64 {
		return nil, errNotQuantity
	}
	num := s
	negative := false
	switch num[0] {
	case '-':
		negative = true
		num = num[1:]
	case '+':
		num = num[1:]
	}
	// The number: digits with at most one point, at least one digit.
	end, digits, points := 0, 0, 0
	for end < len(num) && (isDigit(num[end]) || num[end] == '.') {
		if num[end] == '.' {
			points++
		} else {
			digits++
		}
		end++
	}
	if digits == 0 || points > 1 {
		return nil, errNotQuantity
	}
	q, ok := new(big.Rat).SetString(num[:end])
	if !ok {
		return nil, errNotQuantity
	}
	suffix := num[end:]
	var exp10 int
	if shift, ok := binarySuffixes[suffix]; ok {
		q.Mul(q, new(big.Rat).SetInt(new(big.Int).Lsh(big.NewInt(1), shift)))
	} else if e, ok := decimalSuffixes[suffix]; ok {
		exp10 = e
	} else if suffix[0] == 'e' || suffix[0] == 'E' {
		e, err := exponent(suffix[1:])
		if err != nil {
			return nil, err
		}
		exp10 = e
	} else {
		return nil, errNotQuantity
	}
	if q.Sign() != 0 && exp10 != 0 {
		if exp10 > maxExponent {
			return nil, errTooLarge
		}
		exp10 = max(exp10, -maxExponent) // rounds up to the smallest unit anyway
		p := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(exp10))), nil)
		if exp10 > 0 {
			q.Mul(q, new(big.Rat).SetInt(p))
		} else {
			q.Quo(q, new(big.Rat).SetInt(p))
		}
	}
	if negative && q.Sign() != 0 {
		return nil, errNegative
	}
	return q, nil
}

// exponent reads the signed integer after the e of a quantity, saturated
// beyond ±maxExponent.
func exponent(s string) (int, error) {
	sign := 1
	if s != "" && (s[0] == '-' || s[0] == '+') {
		if s[0] == '-' {
			sign = -1
		}
		s = s[1:]
	}
	if s == "" || strings.TrimFunc(s, func(r rune) bool { return r >= '0' && r <= '9' }) != "" {
		return 0, errNotQuantity
	}
	n := 0
	for _, c := range []byte(s) {
		n = min(n*10+int(c-'0'), maxExponent+1)
	}
	return sign * n, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
