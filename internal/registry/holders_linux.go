package registry

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// holders lists the other processes that have the database (or its WAL files) open, as
// "pid N (command line)", read from /proc. One of them holds the lock; SQLite does not
// say which.
func holders(path string) []string {
	want := map[string]bool{path: true, path + "-wal": true, path + "-shm": true}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	self := os.Getpid()
	var out []string
	for _, p := range procs {
		pid, err := strconv.Atoi(filepath.Base(p))
		if err != nil || pid == self {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join(p, "fd"))
		for _, fd := range fds {
			if target, err := os.Readlink(filepath.Join(p, "fd", fd.Name())); err == nil && want[target] {
				out = append(out, fmt.Sprintf("pid %d (%s)", pid, cmdline(pid)))
				break
			}
		}
	}
	return out
}

func cmdline(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return "?"
	}
	s := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}
