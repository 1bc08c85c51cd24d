package transport

import "syscall"

// childAttr makes a command die with hpctl: an sbatch still running when hpctl is killed
// would otherwise queue a job after anyone could settle the interrupted submission.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
