//go:build unix && !linux

package devstack

import "syscall"

// sysProcAttr puts a child in its own process group, so a signal reaches
// everything it started.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
