// Package num holds Float, the number type of hpctl's JSON output (summary.json, status
// and fetch-results -o json). A diverged training run writes nan and inf into its
// history; encoding/json refuses those outright, so one such cell used to fail a whole
// command. Float writes them as null instead, and reads null back as NaN.
package num

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
)

// Float is a float64 that may be NaN or ±Inf. In JSON a non-finite Float is null.
type Float float64

// NaN is the missing or undefined number.
func NaN() Float { return Float(math.NaN()) }

// Ptr returns a pointer to v, for the optional numbers of JSON documents.
func Ptr(v float64) *Float { f := Float(v); return &f }

// Finite reports whether f is neither NaN nor infinite.
func (f Float) Finite() bool {
	v := float64(f)
	return !math.IsNaN(v) && !math.IsInf(v, 0)
}

// MarshalJSON writes a finite number as encoding/json writes a float64, anything else
// as null (JSON has no NaN or Infinity).
func (f Float) MarshalJSON() ([]byte, error) {
	if !f.Finite() {
		return []byte("null"), nil
	}
	return json.Marshal(float64(f))
}

// UnmarshalJSON reads a number, null (NaN: the value this type writes for non-finite
// numbers), or a string holding a number or one of the names Python and others give
// non-finite numbers ("NaN", "Infinity", "-inf", ...). A number too large for float64
// is ±Inf rather than an error: it is what the writer meant.
func (f *Float) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "null" {
		*f = NaN()
		return nil
	}
	if strings.HasPrefix(s, `"`) {
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		v, err := Parse(str)
		if err != nil {
			return typeError("string " + strconv.Quote(str))
		}
		*f = Float(v)
		return nil
	}
	if s == "" || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) {
		return typeError(kind(s))
	}
	v, err := Parse(s)
	if err != nil {
		return typeError("number " + s)
	}
	*f = Float(v)
	return nil
}

// typeError is what encoding/json returns for a value of the wrong type, so that
// callers tell it from malformed JSON (and decoding goes on past it).
func typeError(value string) error {
	return &json.UnmarshalTypeError{Value: value, Type: reflect.TypeFor[Float]()}
}

// kind names a JSON value's type as encoding/json's errors do.
func kind(s string) string {
	switch s[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	}
	return "value"
}

// Parse reads a number as a CSV or JSON writer may have spelled it: decimal or
// exponent notation, nan, inf, infinity in any case and with a sign. Out-of-range
// magnitudes are ±Inf (or 0 for underflow), not errors.
func Parse(s string) (float64, error) {
	s = strings.TrimSpace(s)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return v, nil
		}
		return math.NaN(), err
	}
	return v, nil
}

// Text formats f for tables: decimals after the point, exponent notation for
// magnitudes of a billion and more (1e308 would be 309 digits), and "nan", "inf" and
// "-inf" for what is not finite.
func (f Float) Text(decimals int) string {
	v := float64(f)
	switch {
	case math.IsNaN(v):
		return "nan"
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	case math.Abs(v) >= 1e9:
		return strconv.FormatFloat(v, 'e', 3, 64)
	}
	return strconv.FormatFloat(v, 'f', decimals, 64)
}

// Text formats an optional number; nil (not known) is empty.
func Text(f *Float, decimals int) string {
	if f == nil {
		return ""
	}
	return f.Text(decimals)
}
