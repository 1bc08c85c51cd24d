package registry

import (
	"context"
	"testing"
)

// Attempts live in the run's JSON document, so no schema change was needed: a record
// written before retry existed (no attempt keys) reads as attempt 1 of every stage, and
// a retried run's attempts and past jobs come back whole.
func TestAttemptsOfOldAndRetriedRecords(t *testing.T) {
	ctx := context.Background()
	r, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	old := `{"id":"old-1","spec_name":"x","spec_file":"/x.yaml","spec_hash":"h","run_dir":"/w/old-1","executor":"slurm",
		"status":"submitted","submitted_at":"2026-11-29T05:40:12Z","hpctl_version":"0.1",
		"stages":[{"name":"frozen","job_id":"11","job_name":"x-frozen","epochs":3}]}`
	if _, err := r.db.ExecContext(ctx, `INSERT INTO runs (id, submitted_at, status, data) VALUES ('old-1', 1, 'submitted', ?)`, old); err != nil {
		t.Fatal(err)
	}
	got, err := r.Get(ctx, "old-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Attempts() != 1 || got.Stages[0].Attempts() != 1 || len(got.Stages[0].Past) != 0 {
		t.Fatalf("old record: run attempt %d, stage %+v", got.Attempts(), got.Stages[0])
	}
	got.Attempt = 2
	got.Stages[0].Attempt = 2
	got.Stages[0].Past = []PastAttempt{{Attempt: 1, JobID: "11", State: "FAILED", Dir: "attempts/1/stages/frozen"}}
	got.Stages[0].JobID = "12"
	if err := r.Put(ctx, got); err != nil {
		t.Fatal(err)
	}
	again, err := r.Get(ctx, "old-1")
	if err != nil {
		t.Fatal(err)
	}
	if s := again.Stages[0]; again.Attempts() != 2 || s.Attempts() != 2 || s.JobID != "12" || len(s.Past) != 1 || s.Past[0] != got.Stages[0].Past[0] {
		t.Fatalf("retried record: %+v", again)
	}
}
