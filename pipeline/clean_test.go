package pipeline_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/pipeline"
	"github.com/hpctl/hpctl/transport"
)

// Registry records are hostile: only <absolute workdir>/<run-id> of an id hpctl makes,
// holding no other recorded run, may be removed.
func TestCheckRemovable(t *testing.T) {
	const id = "demo-20261203-101010-ab12"
	other := registry.Run{ID: "demo-20261203-101010-ab13", RunDir: "/w/" + id + "/trials/0"}
	for _, c := range []struct {
		run registry.Run
		ok  bool
	}{
		{registry.Run{ID: id, RunDir: "/w/" + id}, true},
		{registry.Run{ID: id, RunDir: "/" + id}, true},
		{registry.Run{ID: id, RunDir: "/"}, false},
		{registry.Run{ID: "..", RunDir: ".."}, false},
		{registry.Run{ID: "", RunDir: "/w"}, false},
		{registry.Run{ID: id, RunDir: "w/" + id}, false},
		{registry.Run{ID: id, RunDir: "/w/../" + id}, false},
		{registry.Run{ID: id, RunDir: "/w/" + id + "/"}, false},
		{registry.Run{ID: id, RunDir: "/w/other"}, false},
		{registry.Run{ID: "home", RunDir: "/home"}, false},
		{registry.Run{ID: "a\nb-20261203-101010-ab12", RunDir: "/w/a\nb-20261203-101010-ab12"}, false},
	} {
		err := pipeline.CheckRemovable(c.run, []registry.Run{c.run})
		if (err == nil) != c.ok {
			t.Errorf("%q in %q: %v, want ok %v", c.run.ID, c.run.RunDir, err, c.ok)
		}
	}
	run := registry.Run{ID: id, RunDir: "/w/" + id}
	if err := pipeline.CheckRemovable(run, []registry.Run{run, other}); err == nil {
		t.Error("a run directory holding another run's was removable")
	}
}

// A removal cut short after the rename (the tomb is there, the run directory is not) is
// finished by the next one; a missing directory is "absent", not an error.
func TestRemoveRunDirsFinishesAnInterruptedRemoval(t *testing.T) {
	w := t.TempDir()
	const id = "demo-20261203-101010-ab12"
	tomb := filepath.Join(w, "."+id+".hpctl-removing")
	os.MkdirAll(filepath.Join(tomb, "stages"), 0o755)
	run := registry.Run{ID: id, RunDir: filepath.Join(w, id)}
	res, err := pipeline.RemoveRunDirs(context.Background(), transport.NewLocal(), []registry.Run{run})
	if err != nil {
		t.Fatal(err)
	}
	if r := res[id]; !r.Removed || r.Problem != "" {
		t.Fatalf("result %+v", r)
	}
	if _, err := os.Lstat(tomb); !os.IsNotExist(err) {
		t.Fatalf("the tomb is still there: %v", err)
	}
	res, err = pipeline.RemoveRunDirs(context.Background(), transport.NewLocal(), []registry.Run{run})
	if err != nil || !res[id].Absent {
		t.Fatalf("second removal: %+v %v", res[id], err)
	}
}
