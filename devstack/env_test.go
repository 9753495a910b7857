package devstack

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// procEnviron is the environment process pid started with.
func procEnviron(t *testing.T, pid int) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatalf("read the environment of %d: %v", pid, err)
	}
	env := map[string]string{}
	for _, kv := range bytes.Split(raw, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok {
			env[k] = v
		}
	}
	return env
}

// TestStackProcessesSeeOnlyTheStacksEnvironment starts a stack from a
// directory that holds what a `make dev` leaves behind (.data/payload-keys)
// and with stray settings in the caller's environment, and checks that no
// process of the stack sees either: each starts from a short allow-list of
// the caller's variables plus the stack's own settings, in the stack's
// directory. The starter is the case that broke chaos: it picked up
// .data/payload-keys and encrypted its update for a worker with no key.
func TestStackProcessesSeeOnlyTheStacksEnvironment(t *testing.T) {
	bin := temporalBin(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	caller := t.TempDir()
	if err := os.MkdirAll(filepath.Join(caller, ".data"), 0o755); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	if err := os.WriteFile(filepath.Join(caller, ".data", "payload-keys"), []byte("dev:"+base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(caller)
	stray := map[string]string{
		"TOP_QPS":               "0.001", // would hold every callback for ~17 minutes
		"TOPSIM_ISP_ERROR_RATE": "1",     // would fail every callback
		"RETRY_BUDGET":          "1s",
		"INSURANCEFLOW_STRAY":   "x",
	}
	for k, v := range stray {
		t.Setenv(k, v)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{TemporalBin: bin, ModuleRoot: root, TopsimSeed: 5})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range []string{ProcWorker, ProcTopsim} {
				t.Logf("--- %s log ---\n%s", n, s.LogTail(n, 30))
			}
		}
		s.Stop()
	})

	allowed := inheritedNames()
	for _, name := range []string{ProcWorker, ProcTopsim, ProcTemporal} {
		p := s.proc(name)
		env := procEnviron(t, p.pid())
		for k, stray := range stray {
			// The stack may set the same name itself (TOP_QPS=0): what
			// must not get through is the caller's value.
			if v, ok := env[k]; ok && v == stray {
				t.Errorf("%s sees the caller's %s=%s", name, k, v)
			}
		}
		for k := range env {
			if !slices.Contains(allowed, k) && !slices.Contains(s.ownNames(name), k) {
				t.Errorf("%s sees %s, which is neither allow-listed nor the stack's own", name, k)
			}
		}
		cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", p.pid()))
		if err != nil {
			t.Fatal(err)
		}
		if cwd != s.Dir {
			t.Errorf("%s runs in %s, want the stack's directory %s", name, cwd, s.Dir)
		}
	}

	// The starter, run from the caller's directory with its .data, reports
	// in the clear, so the worker (which has no key) accepts the event.
	bizID := fmt.Sprintf("ENV%d", time.Now().UnixNano())
	out, err := s.Starter(ctx, "report", "--biz-id", bizID, "--stage", "pre_insure", "--status", "success",
		"--insurance-type", "home_property", "--time", "2025-04-08 09:55:00").CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("accepted")) {
		t.Fatalf("starter report: %v\n%s", err, out)
	}
	// And the worker and topsim kept their own settings: the callback
	// arrives at once, accepted.
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, err := s.Callbacks(ctx, bizID)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no callback for %s within 60s: %+v", bizID, got)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
