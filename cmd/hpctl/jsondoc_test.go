package main

import (
	"bufio"
	"encoding/json"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hpctl/hpctl/pipeline"
	"github.com/hpctl/hpctl/pipeline/results"
)

// jsonOutputs are the documents each command writes with -o json, as the types the
// commands marshal. docs/json.md documents every field of each, and only those.
var jsonOutputs = map[string]any{
	"hpctl submit":        submitResult{},
	"hpctl status":        []pipeline.RunStatus{},
	"hpctl runs":          []runsRow{},
	"hpctl compare":       results.Compared{},
	"hpctl fetch-results": []results.Fetched{},
	"hpctl predict":       predictResult{},
	"hpctl weights fetch": weightsResult{},
	"hpctl version":       versionInfo{},
}

// TestJSONDocMatchesTheOutput fills every field of each output type (every pointer set,
// every slice and map with one element), marshals it, and compares the field paths with
// docs/json.md's tables: a field added in code and not documented, or documented and
// gone, fails here.
func TestJSONDocMatchesTheOutput(t *testing.T) {
	doc := documentedJSON(t, "../../docs/json.md")
	for cmd, v := range jsonOutputs {
		val := reflect.New(reflect.TypeOf(v)).Elem()
		fill(val, 0)
		b, err := json.Marshal(val.Interface())
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		var generic any
		if err := json.Unmarshal(b, &generic); err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		jsonPaths(generic, "", got)
		want, ok := doc[cmd]
		if !ok {
			t.Errorf("docs/json.md has no section for `%s -o json`", cmd)
			continue
		}
		for p := range got {
			if !want[p] {
				t.Errorf("%s -o json writes %s, which docs/json.md does not document", cmd, p)
			}
		}
		for p := range want {
			if !got[p] {
				t.Errorf("docs/json.md documents %s for %s -o json, which it does not write", p, cmd)
			}
		}
	}
	for cmd := range doc {
		if _, ok := jsonOutputs[cmd]; !ok {
			t.Errorf("docs/json.md documents %s, which this test does not know", cmd)
		}
	}
}

var (
	jsonHeading = regexp.MustCompile("^## `(hpctl [a-z -]+?) -o json`")
	jsonRow     = regexp.MustCompile("^\\| `([^`]+)` \\|")
	jsonSameAs  = regexp.MustCompile("same fields as `([^`]+)`")
)

// documentedJSON reads docs/json.md: under each "## `hpctl CMD -o json`" heading, a table
// whose first column is a field path (`stages[].elapsed_s`).
func documentedJSON(t *testing.T, file string) map[string]map[string]bool {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]map[string]bool{}
	var cur map[string]bool
	var aliases [][3]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := jsonHeading.FindStringSubmatch(line); m != nil {
			cur = map[string]bool{}
			out[m[1]] = cur
			continue
		}
		if strings.HasPrefix(line, "## ") {
			cur = nil
		}
		if m := jsonRow.FindStringSubmatch(line); m != nil && cur != nil {
			cur[m[1]] = true
			if same := jsonSameAs.FindStringSubmatch(line); same != nil {
				aliases = append(aliases, [3]any{cur, m[1], same[1]})
			}
		}
	}
	// "`a[].stages` | array | same fields as `[].stages`": a's elements have every field
	// documented under [].stages[].
	for _, a := range aliases {
		fields, path, like := a[0].(map[string]bool), a[1].(string), a[2].(string)
		for p := range maps.Clone(fields) {
			if rest, ok := strings.CutPrefix(p, like+"[]"); ok {
				fields[path+"[]"+rest] = true
			}
		}
	}
	return out
}

// jsonPaths lists the paths of a decoded document: a.b for objects, a[] for array
// elements, a.* for a map's values (maps are keyed by data, not by field names).
func jsonPaths(v any, prefix string, out map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			if isDataKey(k) {
				p = prefix + ".*"
			}
			out[p] = true
			jsonPaths(e, p, out)
		}
	case []any:
		for _, e := range x {
			jsonPaths(e, prefix+"[]", out)
		}
	}
}

// isDataKey: fill gives maps the key "k" (and jobs.State maps the state "k").
func isDataKey(k string) bool { return k == "k" }

// fill sets every field of v to a value that is written: strings "1:2" (which also
// reads as an exit status), numbers 1, times now, one element in slices and maps.
func fill(v reflect.Value, depth int) {
	if depth > 8 {
		return
	}
	if v.Type() == reflect.TypeOf(time.Time{}) {
		v.Set(reflect.ValueOf(time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString("1:2")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), depth+1)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0), depth+1)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k := reflect.New(v.Type().Key()).Elem()
		if k.Kind() == reflect.String {
			k.SetString("k")
		}
		e := reflect.New(v.Type().Elem()).Elem()
		fill(e, depth+1)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), depth+1)
			}
		}
	case reflect.Interface:
		v.Set(reflect.ValueOf("1:2"))
	}
}

// Print the paths (go test -run TestJSONPaths -v) when writing the doc.
func TestJSONPaths(t *testing.T) {
	if os.Getenv("HPCTL_PRINT_JSON_PATHS") == "" {
		t.Skip("set HPCTL_PRINT_JSON_PATHS=1 to print the field paths of every -o json document")
	}
	for _, cmd := range slices.Sorted(func(yield func(string) bool) {
		for k := range jsonOutputs {
			if !yield(k) {
				return
			}
		}
	}) {
		val := reflect.New(reflect.TypeOf(jsonOutputs[cmd])).Elem()
		fill(val, 0)
		b, _ := json.Marshal(val.Interface())
		var generic any
		json.Unmarshal(b, &generic)
		got := map[string]bool{}
		jsonPaths(generic, "", got)
		var ps []string
		for p := range got {
			ps = append(ps, p)
		}
		sort.Strings(ps)
		t.Logf("%s:\n%s", cmd, strings.Join(ps, "\n"))
	}
}
