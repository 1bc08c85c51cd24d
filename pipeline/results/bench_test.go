package results_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/internal/testenv"
	"github.com/hpctl/hpctl/pipeline/results"
	"github.com/hpctl/hpctl/transport"
)

// BenchmarkRefetch measures fetch-results of a finished two-stage run whose best
// checkpoints are 16 MiB each: the first fetch (its bytes are the baseline) and then a
// second fetch of the unchanged run, which must move nothing. ns/op is the second
// fetch only (listing, checksum verification, summary, plot and report included).
//
//	go test ./pipeline/results -run '^$' -bench Refetch -benchtime 5x
func BenchmarkRefetch(b *testing.B) {
	remote := filepath.Join(b.TempDir(), "urban-rural-20261129-054012-a3f9")
	run := fixture{frozenEpochs: 20, finetuneEpochs: 10, finetuneStarted: true, finetuneDone: true, checkpointBytes: 16 << 20}.write(b, remote)
	b.Run("local-rsync", func(b *testing.B) { benchRefetch(b, transport.NewLocal(), run) })
	b.Run("local-gocopy", func(b *testing.B) { benchRefetch(b, &transport.Local{NoRsync: true}, run) })
	b.Run("ssh-rsync", func(b *testing.B) {
		cfg, host := testenv.RequireSSH(b)
		tr := transport.NewSSH(host, transport.SSHOptions{ConfigFile: cfg, ControlDir: testenv.ControlDir(b)})
		defer tr.Close()
		benchRefetch(b, tr, run)
	})
}

func benchRefetch(b *testing.B, tr transport.Transport, run registry.Run) {
	ctx := context.Background()
	var first, second, checked int64
	for b.Loop() {
		b.StopTimer()
		root := b.TempDir()
		f, err := results.FetchResults(ctx, tr, run, root, results.Options{})
		if err != nil {
			b.Fatal(err)
		}
		first = f.Transfer.Bytes
		b.StartTimer()
		f, err = results.FetchResults(ctx, tr, run, root, results.Options{})
		if err != nil {
			b.Fatal(err)
		}
		second += f.Transfer.Bytes
		checked = int64(f.Transfer.Checked)
	}
	b.ReportMetric(float64(first), "first-fetch-bytes")
	b.ReportMetric(float64(second)/float64(b.N), "refetch-bytes")
	b.ReportMetric(float64(checked), "files-verified")
	if second != 0 {
		b.Errorf("a fetch of an unchanged run moved %d bytes", second)
	}
}
