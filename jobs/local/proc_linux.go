package local

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// platformSupported: the local executor runs on Linux, where it reads processes from /proc.
func platformSupported() error { return nil }

// jobSysProcAttr puts the script in a process group of its own (Cancel ends all of it) and
// sets Pdeathsig: if the supervisor dies, the script gets SIGTERM and stops its command (the
// stage script's trap), rather than running on unobserved. The caller keeps the starting
// thread locked while the script runs, because the signal follows that thread.
func jobSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

// waitExitedNoReap returns once process pid has exited, without reaping it: WNOWAIT leaves
// it a zombie, so its pid cannot be reused until exec.Cmd.Wait collects it.
func waitExitedNoReap(pid int) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			return
		}
	}
}
