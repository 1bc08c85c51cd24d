package testenv

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// A procLock is a readers-writer lock shared by all test processes of the machine,
// built on two flock(2) files in the temp dir: "<name>.lock", held shared by tests
// using the service and exclusively by a test that disturbs it, and
// "<name>.intent", held by a waiting or holding writer so that no new reader enters
// (writer preference). Within a process, readers share one file descriptor.
type procLock struct {
	name   string
	mu     sync.Mutex
	main   *os.File
	intent *os.File
	shared int  // tests of this process holding it shared
	excl   bool // this process holds it exclusively
}

var (
	slurmLock = &procLock{name: "slurm"}
	sshLock   = &procLock{name: "ssh"}
)

const lockWait = 15 * time.Minute

func (l *procLock) open(t testing.TB) {
	t.Helper()
	if l.main != nil {
		return
	}
	base := filepath.Join(os.TempDir(), "hpctl-testenv-"+l.name)
	var err error
	if l.main, err = os.OpenFile(base+".lock", os.O_RDWR|os.O_CREATE, 0o666); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if l.intent, err = os.OpenFile(base+".intent", os.O_RDWR|os.O_CREATE, 0o666); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// share holds the lock shared until the test ends.
func (l *procLock) share(t testing.TB) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open(t)
	if l.shared == 0 && !l.excl {
		// Wait while another process stops the service or waits to.
		l.wait(t, l.intent, lockShared, "another test package disturbing the "+l.name+" service")
		unlock(l.intent)
		l.wait(t, l.main, lockShared, "another test package disturbing the "+l.name+" service")
	}
	l.shared++
	t.Cleanup(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.shared--
		if l.shared == 0 && !l.excl {
			unlock(l.main)
		}
	})
}

// exclusive takes the lock exclusively, waiting for other processes' readers to end.
func (l *procLock) exclusive(t testing.TB) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.excl {
		return
	}
	l.open(t)
	// Drop our own shared hold first: two processes each holding it shared and
	// waiting for exclusive would otherwise wait for each other.
	unlock(l.main)
	l.wait(t, l.intent, lockExclusive, "another test package disturbing the "+l.name+" service")
	l.wait(t, l.main, lockExclusive, "other test packages using the "+l.name+" service")
	l.excl = true
}

func (l *procLock) isExclusive() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.excl
}

// release ends an exclusive hold, going back to shared if tests of this process
// still hold it shared.
func (l *procLock) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.excl {
		return
	}
	if l.shared > 0 {
		_ = tryLock(l.main, lockShared) // converting down never conflicts
	} else {
		unlock(l.main)
	}
	unlock(l.intent)
	l.excl = false
}

func (l *procLock) wait(t testing.TB, f *os.File, how int, why string) {
	t.Helper()
	start := time.Now()
	logged := false
	for {
		err := tryLock(f, how)
		if err == nil {
			return
		}
		if !isWouldBlock(err) {
			t.Fatalf("testenv: locking %s: %v", f.Name(), err)
		}
		if !logged && time.Since(start) > 2*time.Second {
			t.Logf("testenv: waiting for %s (%s)", why, f.Name())
			logged = true
		}
		if time.Since(start) > lockWait {
			t.Fatalf("testenv: gave up after %s waiting for %s (%s)", lockWait, why, f.Name())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
