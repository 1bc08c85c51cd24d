package experiment

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// The layout's names reach the job script and the status script bare (they are not user
// input): each must be a word no shell would split or expand.
func TestLayoutNamesAreShellWords(t *testing.T) {
	word := regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	for _, n := range []string{SpecFile, ResolvedSpecFile, TrainerDir, TrainerMain, StagesDir, LogsDir, LogsKeep,
		ScriptFile, MarkerDir, StartedMarker, FinishedMarker, HistoryFile, MetricsFile, EvaluationFile,
		CheckpointsDir, BestCheckpoint, FinalCheckpoint, ModelInfoFile, StateDir, TensorBoardDir, TrialsDir, TrialTable, AttemptsDir, PredictDir} {
		if !word.MatchString(n) || n == "." || n == ".." {
			t.Errorf("layout name %q is not a plain file name", n)
		}
	}
}

// docTree returns the paths of the run-directory tree in docs/run-directory.md: the
// first fenced block starting with "<run-dir>/", entries relative to the run directory,
// with the stage's entries under "stages/<stage>/".
func docTree(t *testing.T, doc string) []string {
	t.Helper()
	start := strings.Index(doc, "```\n<run-dir>/\n")
	if start < 0 {
		t.Fatal("docs/run-directory.md: no tree starting with <run-dir>/")
	}
	block := doc[start+len("```\n<run-dir>/\n"):]
	block = block[:strings.Index(block, "```")]
	var out []string
	prefix := ""
	for _, line := range strings.Split(block, "\n") {
		indent := len(line) - len(strings.TrimLeft(line, " "))
		fields := strings.Fields(line)
		if len(fields) == 0 || indent > 4 {
			continue // blank, or the continuation of a description
		}
		p := fields[0]
		switch indent {
		case 2:
			prefix = ""
			if strings.HasPrefix(p, StagesDir+"/") && strings.HasSuffix(p, "/") {
				prefix = p
				continue
			}
			out = append(out, p)
		case 4:
			out = append(out, prefix+p)
		}
	}
	sort.Strings(out)
	return out
}

// layoutTree is the same list built from the constants.
func layoutTree() []string {
	ps := PathsOf("<stage>")
	out := []string{
		SpecFile, ResolvedSpecFile, TrainerDir + "/",
		ps.Script, ps.Markers + "/" + StartedMarker, ps.Markers + "/" + FinishedMarker,
		ps.History, ps.Metrics, ps.Evaluation, ps.BestCheckpoint + ".*", ps.FinalCheckpoint + ".*",
		ps.ModelInfo, ps.State + "/", ps.TensorBoard + "/",
		strings.TrimPrefix(LogPath("", "<job-name>", "<job-id>", "out"), "/"),
		strings.TrimPrefix(LogPath("", "<job-name>", "<job-id>", "err"), "/"),
		TrialTable, strings.Replace(TrialDir(0), "0", "<k>", 1) + "/",
		strings.Replace(AttemptDir(0, "<stage>"), "/0/", "/<n>/", 1) + "/",
		strings.TrimPrefix(ArrayLogPath("", "<job-name>", "<array-job-id>", "<task>", "out"), "/"),
		strings.TrimPrefix(ArrayLogPath("", "<job-name>", "<array-job-id>", "<task>", "err"), "/"),
		PredictScratch("<id>") + "/",
		strings.TrimPrefix(strings.Replace(TaskLogPath("", "<job-name>", "<job-id>", 0, "out"), ".task0.", ".task<K>.", 1), "/"),
		strings.TrimPrefix(strings.Replace(TaskLogPath("", "<job-name>", "<job-id>", 0, "err"), ".task0.", ".task<K>.", 1), "/"),
	}
	sort.Strings(out)
	return out
}

// docs/run-directory.md is the contract with job scripts and the trainer; the constants
// are what the code uses. They must name the same files.
func TestRunDirectoryDocMatchesLayout(t *testing.T) {
	b, err := os.ReadFile("../docs/run-directory.md")
	if err != nil {
		t.Fatal(err)
	}
	got, want := docTree(t, string(b)), layoutTree()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("docs/run-directory.md's tree and the layout constants disagree\n doc:       %q\n constants: %q", got, want)
	}
}

// The resolved spec shown in docs/run-directory.md has exactly the keys hpctl writes, and
// its stages' paths are the layout's.
func TestResolvedSpecDocMatchesCode(t *testing.T) {
	b, err := os.ReadFile("../docs/run-directory.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, "```json\n")
	if i < 0 {
		t.Fatal("docs/run-directory.md: no json block")
	}
	example := doc[i+len("```json\n"):]
	example = example[:strings.Index(example, "```")]
	dec := json.NewDecoder(strings.NewReader(example))
	dec.DisallowUnknownFields()
	var r resolvedSpec
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("the documented resolved spec has a key hpctl does not write: %v", err)
	}
	// Every key hpctl writes is documented: the example, decoded and written again,
	// has the same keys as the example itself.
	var asDoc, asCode any
	if err := json.Unmarshal([]byte(example), &asDoc); err != nil {
		t.Fatal(err)
	}
	again, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(again, &asCode); err != nil {
		t.Fatal(err)
	}
	if d, c := keysOf(asDoc, ""), keysOf(asCode, ""); !reflect.DeepEqual(d, c) {
		t.Errorf("documented keys %q\n written keys    %q", d, c)
	}
	if len(r.Stages) == 0 {
		t.Fatal("the example has no stages")
	}
	for _, st := range r.Stages {
		if st.Paths != PathsOf(st.Name) {
			t.Errorf("stage %s: documented paths %+v, the layout's %+v", st.Name, st.Paths, PathsOf(st.Name))
		}
	}
}

func keysOf(v any, prefix string) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			out = append(out, prefix+k)
			out = append(out, keysOf(e, prefix+k+".")...)
		}
	case []any:
		for _, e := range v {
			out = append(out, keysOf(e, prefix+"[].")...)
		}
	}
	sort.Strings(out)
	return dedup(out)
}

func dedup(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// A plan's resolved spec carries each stage's paths, from the layout.
func TestResolvedSpecCarriesPaths(t *testing.T) {
	l, err := Parse("x.yaml", []byte("name: x\nworkdir: /w\ndata: {train: /d/t, val: /d/v}\nstages:\n  - name: frozen\n  - name: tune\n    depends_on: [frozen]\n    init_from: frozen\n"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.Plan("/home/u", "/home/u", "r1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.ResolvedJSON()
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Stages []struct {
			Name  string            `json:"name"`
			Paths map[string]string `json:"paths"`
		} `json:"stages"`
	}
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&r); err != nil {
		t.Fatal(err)
	}
	if len(r.Stages) != 2 {
		t.Fatalf("%d stages", len(r.Stages))
	}
	for _, st := range r.Stages {
		if got, want := st.Paths["history"], "stages/"+st.Name+"/history.csv"; got != want {
			t.Errorf("stage %s: history at %q, want %q", st.Name, got, want)
		}
		if got, want := st.Paths["best_checkpoint"], "stages/"+st.Name+"/checkpoints/best"; got != want {
			t.Errorf("stage %s: best checkpoint at %q, want %q", st.Name, got, want)
		}
	}
}
