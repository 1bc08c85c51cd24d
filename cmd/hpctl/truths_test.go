package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hpctl/hpctl/containers"
	"github.com/hpctl/hpctl/experiment"
)

// Small truths (hpctl#14, item 8): what hpctl and its files say agrees with the code.

// The starter `hpctl init` writes offers every backbone and every runtime, from the code
// that accepts them: a backbone added there (here, one added by the test) is offered.
func TestStarterListsEveryBackboneAndRuntime(t *testing.T) {
	dir := isolate(t)
	experiment.Backbones["testnet"] = 32
	t.Cleanup(func() { delete(experiment.Backbones, "testnet") })
	file := filepath.Join(dir, "s.yaml")
	if _, stderr, code := hpctl(t, "init", "s", "--file", file); code != 0 {
		t.Fatalf("init: exit %d: %s", code, stderr)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	line := func(key string) string {
		m := regexp.MustCompile(`(?m)^\s*` + key + `:.*#(.*)$`).FindStringSubmatch(string(b))
		if m == nil {
			t.Fatalf("the starter has no commented %s line:\n%s", key, b)
		}
		return m[1]
	}
	offered := func(key string, want []string) {
		got := strings.Split(strings.TrimSpace(line(key)), ", ")
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("the starter offers %s %q; the code accepts %q", key, got, want)
		}
	}
	offered("backbone", slices.Sorted(maps.Keys(experiment.Backbones)))
	offered("runtime", containers.Names())
}

// Every flag's help shows one default (--interval showed "(default: the poll-interval
// setting; at least 1s) (default: 0s)").
func TestHelpShowsOneDefaultPerFlag(t *testing.T) {
	isolate(t)
	helps := [][]string{{"--help"}}
	for path := range leafCommands(newApp(&env{})) {
		helps = append(helps, append(strings.Fields(path), "--help"))
	}
	helps = append(helps, []string{"weights", "--help"})
	for _, args := range helps {
		stdout, stderr, code := hpctl(t, args...)
		if code != 0 {
			t.Fatalf("hpctl %s: exit %d: %s", strings.Join(args, " "), code, stderr)
		}
		for _, l := range strings.Split(stdout, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "-") && strings.Count(l, "default") > 1 {
				t.Errorf("hpctl %s: a flag with two defaults: %s", strings.Join(args, " "), strings.TrimSpace(l))
			}
		}
	}
}

// configs/demo.yaml names the venv `make demo` (scripts/demo.sh) really makes and uses.
func TestDemoSpecNamesTheDemosVenv(t *testing.T) {
	spec, err := os.ReadFile("../../configs/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile("../../scripts/demo.sh")
	if err != nil {
		t.Fatal(err)
	}
	venvs := regexp.MustCompile(`\.venv-[\w-]+`).FindAllString(string(spec), -1)
	if len(venvs) == 0 {
		t.Fatal("configs/demo.yaml names no venv to put on PATH")
	}
	for _, v := range venvs {
		if !strings.Contains(string(script), "$PWD/"+v+"/bin") {
			t.Errorf("configs/demo.yaml names %s; scripts/demo.sh does not put it on PATH", v)
		}
	}
}

// Log fields that measure carry their unit in their name: zerolog writes a Dur as a bare
// number whose unit is a global setting, and "took": 1234 says nothing. Every Go file of
// the module is read.
func TestLogFieldsCarryUnits(t *testing.T) {
	timeish := regexp.MustCompile(`(?i)(took|elapsed|duration|wait|waited|interval|timeout|delay|age|latency|time)$`)
	var files []string
	err := filepath.WalkDir("../..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != "../.." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 20 {
		t.Fatalf("found only %d Go files", len(files))
	}
	fset := token.NewFileSet()
	for _, p := range files {
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || len(call.Args) != 2 {
				return true
			}
			key, ok := call.Args[0].(*ast.BasicLit)
			if !ok || key.Kind != token.STRING {
				return true
			}
			name, _ := strconv.Unquote(key.Value)
			switch sel.Sel.Name {
			case "Dur", "TimeDiff":
				t.Errorf("%s: log field %q is a zerolog %s, a number without its unit; log an Int64 named %s_ms", fset.Position(call.Pos()), name, sel.Sel.Name, name)
			case "Int", "Int64", "Uint64", "Float64":
				if timeish.MatchString(name) {
					t.Errorf("%s: log field %q measures time without naming the unit (%s_ms, %s_s)", fset.Position(call.Pos()), name, name, name)
				}
			}
			return true
		})
	}
}
