package local

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

// GroupMembers exposes groupMembers to the tests.
var GroupMembers = groupMembers

// SupervisorPID returns the pid of a job's supervisor.
func SupervisorPID(t *testing.T, e *Executor, id string) int {
	t.Helper()
	r, err := readRecord(recordPath(e.dir, id))
	if err != nil || r.SupervisorPID == 0 {
		t.Fatalf("no supervisor for %s: %v", id, err)
	}
	return r.SupervisorPID
}

// SignalContext is cmd/hpctl's: SIGTERM and SIGINT cancel the supervisor's context.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// WaitSupervisorExit waits until a job's supervisor has exited, so a test's temporary
// directories are not removed under its last write.
func WaitSupervisorExit(e *Executor, id string) {
	r, err := readRecord(recordPath(e.dir, id))
	if err != nil {
		return
	}
	for range 500 {
		if !supervisorAlive(r) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
