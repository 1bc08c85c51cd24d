package num_test

import (
	"encoding/json"
	"errors"
	"math"
	"testing"

	"github.com/hpctl/hpctl/internal/num"
)

func TestFloatJSON(t *testing.T) {
	type doc struct {
		A num.Float   `json:"a"`
		B *num.Float  `json:"b,omitempty"`
		C []num.Float `json:"c"`
	}
	d := doc{A: num.NaN(), B: num.Ptr(math.Inf(-1)), C: []num.Float{0.5, num.Float(math.Inf(1)), 1e308, -1e308, 1e-7}}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a":null,"b":null,"c":[0.5,null,1e+308,-1e+308,1e-7]}`; string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
	var back doc
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(float64(back.A)) || back.B != nil || !math.IsNaN(float64(back.C[1])) || back.C[2] != 1e308 {
		t.Errorf("read back: %+v", back)
	}
	// Strings with the names writers give non-finite numbers; numbers past float64.
	if err := json.Unmarshal([]byte(`{"a":"-Infinity","c":["NaN","inf",1e999,-1e999]}`), &back); err != nil {
		t.Fatal(err)
	}
	if !math.IsInf(float64(back.A), -1) || !math.IsNaN(float64(back.C[0])) || !math.IsInf(float64(back.C[1]), 1) ||
		!math.IsInf(float64(back.C[2]), 1) || !math.IsInf(float64(back.C[3]), -1) {
		t.Errorf("read: %+v", back)
	}
	// A value of another type is a type error, as encoding/json's own.
	for _, in := range []string{`{"a":"high"}`, `{"a":true}`, `{"a":[1]}`, `{"a":{}}`} {
		var typeErr *json.UnmarshalTypeError
		if err := json.Unmarshal([]byte(in), &back); !errors.As(err, &typeErr) {
			t.Errorf("%s: %v, want a *json.UnmarshalTypeError", in, err)
		}
	}
}

func TestFloatText(t *testing.T) {
	for _, c := range []struct {
		v    float64
		want string
	}{{0.65, "0.6500"}, {math.NaN(), "nan"}, {math.Inf(1), "inf"}, {math.Inf(-1), "-inf"}, {1e308, "1.000e+308"}, {-2.5e9, "-2.500e+09"}, {123456789, "123456789.0000"}} {
		if got := num.Float(c.v).Text(4); got != c.want {
			t.Errorf("Text(%v) = %q, want %q", c.v, got, c.want)
		}
	}
	if num.Text(nil, 4) != "" {
		t.Error("nil is not empty")
	}
}
