package fsutil

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Lock takes an exclusive flock on path (created if needed), waiting for it; the returned
// function releases it. flock locks die with their process, so a killed holder never
// wedges anyone.
func Lock(path string) (func(), error) {
	unlock, ok, err := lock(path, true)
	if err == nil && !ok {
		err = errors.New("not acquired")
	}
	return unlock, err
}

// TryLock takes the lock if nobody holds it; ok is false (and unlock nil) when a live
// process does.
func TryLock(path string) (unlock func(), ok bool, err error) {
	return lock(path, false)
}

func lock(path string, wait bool) (func(), bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
	how := unix.LOCK_EX
	if !wait {
		how |= unix.LOCK_NB
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if errors.Is(err, unix.EWOULDBLOCK) {
		f.Close()
		return nil, false, nil
	}
	if err != nil {
		f.Close()
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, true, nil
}
