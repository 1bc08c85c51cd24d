package executortest

import (
	"context"
	"io"
	"strings"
	"sync"

	"github.com/hpctl/hpctl/transport"
)

// Counting wraps a transport and counts the commands run through it, by program name
// (argv[0], or the program env(1) runs). It changes nothing: tests use it to prove that
// status asks Slurm at most once per tool.
type Counting struct {
	transport.Transport
	mu     sync.Mutex
	counts map[string]int
}

// NewCounting wraps t.
func NewCounting(t transport.Transport) *Counting {
	return &Counting{Transport: t, counts: map[string]int{}}
}

// Run implements transport.Transport.
func (c *Counting) Run(ctx context.Context, argv []string, stdin io.Reader) (transport.Result, error) {
	c.mu.Lock()
	c.counts[program(argv)]++
	c.mu.Unlock()
	return c.Transport.Run(ctx, argv, stdin)
}

// Count is how many times prog ran.
func (c *Counting) Count(prog string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[prog]
}

// Counts returns a copy of all counts.
func (c *Counting) Counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[string]int{}
	for k, v := range c.counts {
		m[k] = v
	}
	return m
}

// Reset zeroes the counts.
func (c *Counting) Reset() {
	c.mu.Lock()
	c.counts = map[string]int{}
	c.mu.Unlock()
}

func program(argv []string) string {
	if len(argv) == 0 {
		return ""
	}
	if argv[0] == "env" {
		for _, a := range argv[1:] {
			if !strings.Contains(a, "=") {
				return a
			}
		}
	}
	return argv[0]
}

// Faulty wraps a transport so that the first Fail runs of Prog (every program when
// empty) do not reach the cluster and instead answer as a busy controller does: exit 1
// and Stderr on stderr. This is the one fault hpctl's tests inject; everything else is
// real.
type Faulty struct {
	transport.Transport
	Prog   string
	Fail   int
	Stderr string

	mu     sync.Mutex
	failed int
}

// Run implements transport.Transport.
func (f *Faulty) Run(ctx context.Context, argv []string, stdin io.Reader) (transport.Result, error) {
	f.mu.Lock()
	inject := (f.Prog == "" || program(argv) == f.Prog) && f.failed < f.Fail
	if inject {
		f.failed++
	}
	f.mu.Unlock()
	if inject {
		msg := f.Stderr
		if msg == "" {
			msg = "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation"
		}
		return transport.Result{ExitCode: 1, Stderr: []byte(msg + "\n")}, nil
	}
	return f.Transport.Run(ctx, argv, stdin)
}

// Failed is how many runs were failed so far.
func (f *Faulty) Failed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}
