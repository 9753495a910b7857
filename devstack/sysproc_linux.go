package devstack

import "syscall"

// sysProcAttr puts a child in its own process group (so a signal reaches
// everything it started) and has the kernel kill it if this process dies
// first, so a crashed benchmark or test leaves no orphans.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
