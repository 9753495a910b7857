package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat;
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// procSample is one reading of a process's CPU time and memory.
type procSample struct {
	CPUSeconds float64 // utime + stime
	RSSKiB     int64   // VmRSS
	HWMKiB     int64   // VmHWM, the peak RSS so far
}

// readProc reads /proc/<pid>/stat and /proc/<pid>/status.
func readProc(pid int) (procSample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procSample{}, fmt.Errorf("read worker stat: %w", err)
	}
	cpu, err := parseStatCPU(string(stat))
	if err != nil {
		return procSample{}, err
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procSample{}, fmt.Errorf("read worker status: %w", err)
	}
	defer f.Close()
	rss, hwm, err := parseStatusMem(bufio.NewScanner(f))
	if err != nil {
		return procSample{}, err
	}
	return procSample{CPUSeconds: cpu, RSSKiB: rss, HWMKiB: hwm}, nil
}

// parseStatCPU returns utime+stime in seconds. The command name (field 2)
// may contain spaces and parentheses, so fields are counted after its
// closing parenthesis: utime and stime are fields 14 and 15.
func parseStatCPU(stat string) (float64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc stat: no command name in %q", trunc(stat))
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc stat: %d fields after the command name, want at least 13", len(f))
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc stat: utime %q stime %q are not counts", f[11], f[12])
	}
	return float64(utime+stime) / clockTicks, nil
}

// parseStatusMem reads VmRSS and VmHWM (kB) from /proc/<pid>/status.
func parseStatusMem(sc *bufio.Scanner) (rss, hwm int64, err error) {
	found := 0
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		fs := strings.Fields(val)
		if len(fs) != 2 || fs[1] != "kB" {
			return 0, 0, fmt.Errorf("parse /proc status: %s is %q, want \"<n> kB\"", key, strings.TrimSpace(val))
		}
		n, perr := strconv.ParseInt(fs[0], 10, 64)
		if perr != nil {
			return 0, 0, fmt.Errorf("parse /proc status: %s: %w", key, perr)
		}
		if key == "VmRSS" {
			rss = n
		} else {
			hwm = n
		}
		found++
	}
	if err := sc.Err(); err != nil {
		return 0, 0, fmt.Errorf("read /proc status: %w", err)
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("parse /proc status: VmRSS or VmHWM missing")
	}
	return rss, hwm, nil
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
