package devstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/store"
)

// temporalBin is the pinned dev server; `make test` sets TEMPORAL_BIN.
func temporalBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("TEMPORAL_BIN")
	if bin == "" {
		t.Fatal("TEMPORAL_BIN is not set: run the devstack tests via `make test` (it builds the pinned dev server and sets TEMPORAL_BIN=.bin/temporal)")
	}
	return bin
}

func TestOptionsErrors(t *testing.T) {
	tests := []struct {
		name      string
		opts      Options
		wantField string
	}{
		{name: "no temporal binary and no external server", opts: Options{}, wantField: "TemporalBin"},
		{name: "bin dir without binaries", opts: Options{TemporalBin: "/nonexistent/temporal", BinDir: t.TempDir(), Dir: t.TempDir()}, wantField: "BinDir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Start(context.Background(), tt.opts)
			if err == nil {
				s.Stop()
				t.Fatal("Start succeeded, want an OptionsError")
			}
			var oe *OptionsError
			if !errors.As(err, &oe) {
				t.Fatalf("err=%v (%T), want *OptionsError", err, err)
			}
			if oe.Field != tt.wantField {
				t.Fatalf("field=%q, want %q (err: %v)", oe.Field, tt.wantField, err)
			}
		})
	}
}

// TestStack starts the real stack from freshly built binaries, reports
// events through the ingress, crashes and restarts the worker, restarts the
// dev server, and checks that Stop leaves no process and no directory.
func TestStack(t *testing.T) {
	bin := temporalBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	var progress bytes.Buffer
	s, err := Start(ctx, Options{TemporalBin: bin, ModuleRoot: "..", TopsimSeed: 3, Metrics: true, Log: &progress})
	if err != nil {
		t.Fatalf("Start: %v\nprogress:\n%s", err, progress.String())
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			if t.Failed() {
				for _, n := range []string{ProcWorker, ProcTopsim, ProcTemporal} {
					t.Logf("--- %s log ---\n%s", n, s.LogTail(n, 40))
				}
			}
			s.Stop()
		}
	})
	if !bytes.Contains(progress.Bytes(), []byte("starting the worker")) {
		t.Fatalf("progress log lacks the worker step:\n%s", progress.String())
	}

	bizID := fmt.Sprintf("DEVSTACK%d", time.Now().UnixNano())
	report := func(t *testing.T, stage insurance.Stage, occurred string) {
		t.Helper()
		body := fmt.Sprintf(`{"biz_id":%q,"stage":%d,"status":1,"time_of_occurrence":%q,"insurance_type":1}`, bizID, stage, occurred)
		// Just after a restart the ingress may answer 503 until Temporal
		// is reachable again, or until the restarted worker picks up the
		// policy (its old worker's sticky queue times out after 5 s, the
		// ingress's TEMPORAL_CALL_TIMEOUT): that is the documented
		// retryable answer, and the re-sent event may then be answered as
		// the duplicate of the one that got through.
		deadline := time.Now().Add(60 * time.Second)
		resent := false
		for {
			status, resp, err := s.Report(ctx, []byte(body))
			if err != nil {
				t.Fatalf("Report %s: %v", stage, err)
			}
			if status == http.StatusAccepted || (resent && status == http.StatusOK && bytes.Contains(resp, []byte(`"duplicate":true`))) {
				return
			}
			resent = true
			if status != http.StatusServiceUnavailable || time.Now().After(deadline) {
				t.Fatalf("Report %s: status=%d body=%s, want 202", stage, status, resp)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	waitReceipts := func(t *testing.T, want []insurance.Stage) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			got, err := s.Callbacks(ctx, bizID)
			if err != nil {
				t.Fatalf("Callbacks: %v", err)
			}
			if len(got) >= len(want) {
				if len(got) != len(want) {
					t.Fatalf("%d receipts, want %d: %+v", len(got), len(want), got)
				}
				for i, r := range got {
					if r.Stage != want[i] || r.BizID != bizID {
						t.Fatalf("receipt %d = %s/%s, want %s/%s", i, r.BizID, r.Stage, bizID, want[i])
					}
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d receipts after 60s, want %d: %+v", len(got), len(want), got)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	t.Run("report reaches topsim", func(t *testing.T) {
		report(t, insurance.StagePreInsure, "2025-04-08 09:55:00")
		waitReceipts(t, []insurance.Stage{insurance.StagePreInsure})
		// The next subtest kills the worker. Killed between TOP's answer
		// and the attempt's record, it would rightly deliver pre_insure
		// again after the restart (at least once, same request id), so
		// wait until the store has the delivery.
		st, err := store.Open(ctx, s.DatabaseURL)
		if err != nil {
			t.Fatalf("open the worker's store: %v", err)
		}
		defer st.Close()
		deadline := time.Now().Add(30 * time.Second)
		for {
			attempts, err := st.Attempts(ctx, bizID)
			if err != nil {
				t.Fatalf("Attempts: %v", err)
			}
			if len(attempts) == 1 && attempts[0].Class == store.ClassDelivered {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("attempts %+v after 30s, want one delivered", attempts)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("unauthorised report is refused", func(t *testing.T) {
		tok := s.Token
		s.Token = "wrong-token"
		status, _, err := s.Report(ctx, []byte(`{}`))
		s.Token = tok
		if err != nil || status != http.StatusUnauthorized {
			t.Fatalf("status=%d err=%v, want 401", status, err)
		}
	})

	t.Run("kill and restart the worker", func(t *testing.T) {
		old := s.WorkerPID()
		if old == 0 {
			t.Fatal("WorkerPID=0 with the worker running")
		}
		if err := s.KillWorker(); err != nil {
			t.Fatalf("KillWorker: %v", err)
		}
		if pid := s.WorkerPID(); pid != 0 {
			t.Fatalf("WorkerPID=%d after KillWorker, want 0", pid)
		}
		if err := syscall.Kill(old, 0); !errors.Is(err, syscall.ESRCH) {
			t.Fatalf("old worker %d still exists (kill -0: %v)", old, err)
		}
		if err := s.KillWorker(); err == nil {
			t.Fatal("KillWorker on a dead worker succeeded, want an error")
		}
		if err := s.StartWorker(ctx); err != nil {
			t.Fatalf("StartWorker: %v", err)
		}
		if pid := s.WorkerPID(); pid == 0 || pid == old {
			t.Fatalf("WorkerPID=%d after restart (old %d), want a new pid", pid, old)
		}
		report(t, insurance.StageUnderwrite, "2025-04-08 10:00:00")
		waitReceipts(t, []insurance.Stage{insurance.StagePreInsure, insurance.StageUnderwrite})
	})

	t.Run("faults", func(t *testing.T) {
		if err := s.SetFaults(ctx, `{"isp_error_rate":0}`); err != nil {
			t.Fatalf("SetFaults: %v", err)
		}
		err := s.SetFaults(ctx, `{"isp_error_rate":7}`)
		var he *HTTPError
		if !errors.As(err, &he) || he.Status != http.StatusBadRequest {
			t.Fatalf("SetFaults(rate 7) err=%v, want an HTTPError with 400", err)
		}
	})

	t.Run("main worker serves metrics", func(t *testing.T) {
		if s.MetricsAddr == "" {
			t.Fatal("MetricsAddr empty with Options.Metrics set")
		}
		if code := getStatus(t, "http://"+s.MetricsAddr+"/metrics"); code != http.StatusOK {
			t.Fatalf("GET /metrics status=%d, want 200", code)
		}
	})

	// left running for Stop to take down.
	const leftRunning = "worker-left-running"
	t.Run("extra worker", func(t *testing.T) {
		for _, name := range []string{"", ProcWorker, ProcTemporal, "../escape"} {
			_, _, err := s.StartExtraWorker(ctx, name, nil)
			var oe *OptionsError
			if !errors.As(err, &oe) {
				t.Fatalf("StartExtraWorker(%q) err=%v, want an OptionsError", name, err)
			}
		}

		url, stop, err := s.StartExtraWorker(ctx, "worker-extra", []string{"TASK_QUEUE=devstack-extra"})
		if err != nil {
			t.Fatalf("StartExtraWorker: %v", err)
		}
		if url == s.IngressURL {
			t.Fatalf("extra worker url=%s, the main worker's", url)
		}
		if code := getStatus(t, url+"/readyz"); code != http.StatusOK {
			t.Fatalf("extra worker /readyz status=%d, want 200", code)
		}
		if _, _, err := s.StartExtraWorker(ctx, "worker-extra", nil); err == nil {
			t.Fatal("a second extra worker with a running one's name started, want an error")
		}
		if !strings.Contains(s.LogTail("worker-extra", 1000), "devstack: worker-extra starting") {
			t.Fatalf("worker-extra.log lacks the start line:\n%s", s.LogTail("worker-extra", 20))
		}
		if err := stop(); err != nil {
			t.Fatalf("stop: %v", err)
		}
		if err := stop(); err != nil {
			t.Fatalf("second stop: %v", err)
		}
		if _, err := http.Get(url + "/readyz"); err == nil {
			t.Fatalf("extra worker still answers at %s after stop", url)
		}
		// The main worker is untouched.
		if code := getStatus(t, s.IngressURL+"/readyz"); code != http.StatusOK {
			t.Fatalf("main worker /readyz status=%d after stopping the extra one, want 200", code)
		}
		if _, _, err := s.StartExtraWorker(ctx, leftRunning, nil); err != nil {
			t.Fatalf("StartExtraWorker(%s): %v", leftRunning, err)
		}
	})

	t.Run("restart the dev server keeps its state", func(t *testing.T) {
		if err := s.StopTemporal(); err != nil {
			t.Fatalf("StopTemporal: %v", err)
		}
		if err := s.StartTemporal(ctx); err != nil {
			t.Fatalf("StartTemporal: %v", err)
		}
		// The policy workflow survived: insure is legal only after underwrite.
		report(t, insurance.StageInsure, "2025-04-08 10:05:00")
		waitReceipts(t, []insurance.Stage{insurance.StagePreInsure, insurance.StageUnderwrite, insurance.StageInsure})
	})

	t.Run("stop leaves nothing behind", func(t *testing.T) {
		var pids []int
		for _, n := range []string{ProcWorker, ProcTopsim, ProcTemporal, leftRunning} {
			p := s.proc(n)
			if p == nil || !p.running() {
				t.Fatalf("%s not running before Stop", n)
			}
			pids = append(pids, p.pid())
		}
		dir := s.Dir
		if _, err := os.Stat(filepath.Join(dir, "worker.log")); err != nil {
			t.Fatalf("worker log: %v", err)
		}
		stopped = true
		if err := s.Stop(); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		for _, pid := range pids {
			// The whole group is gone, not only its leader.
			if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Fatalf("process group %d still exists after Stop (kill -0: %v)", pid, err)
			}
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("temporary dir %s still there after Stop (stat: %v)", dir, err)
		}
	})
}

// getStatus is the status of GET url.
func getStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestDevServerExitingAtStartIsStartedAgain: a dev server that exits while
// starting (a port taken between devstack's pick and the server's bind, as
// once in `make test` with several stacks starting at once) is started
// again on other ports. The "server" here exits with status 2 the first
// time, as the real one did, and is the pinned dev server after that.
func TestDevServerExitingAtStartIsStartedAgain(t *testing.T) {
	real := temporalBin(t)
	dir := t.TempDir()
	marker := filepath.Join(dir, "failed-once")
	script := filepath.Join(dir, "temporal")
	body := "#!/bin/sh\nif [ ! -e '" + marker + "' ]; then : > '" + marker + "'; echo 'bind: address already in use' >&2; exit 2; fi\nexec '" + real + "' \"$@\"\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	s := &Stack{opts: Options{TemporalBin: script, Log: &log}, Dir: dir, procs: map[string]*process{}}
	t.Cleanup(func() { _ = s.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.startDevServer(ctx); err != nil {
		t.Fatalf("startDevServer: %v\n%s", err, log.String())
	}
	if !strings.Contains(log.String(), "exited while starting (attempt 1)") {
		t.Fatalf("log = %q, want the first start's exit noted", log.String())
	}
	if p := s.proc(ProcTemporal); p == nil || !p.running() {
		t.Fatal("no dev server running after the second start")
	}
}

func TestRaceReports(t *testing.T) {
	dir := t.TempDir()
	s := &Stack{Dir: dir}
	if got, err := s.RaceReports(); err != nil || got != "" {
		t.Fatalf("no logs: %q, %v", got, err)
	}
	report := "WARNING: DATA RACE\nWrite at 0x00c000 by goroutine 7:\n  main.f()\n=================="
	logs := map[string]string{
		"worker.log": "time=… level=INFO msg=starting\n==================\n" + report + "\ntime=… msg=\"callback attempt\"\n",
		"topsim.log": "time=… msg=\"top request\"\n",
	}
	for name, text := range logs {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.RaceReports()
	if err != nil {
		t.Fatal(err)
	}
	want := "----- worker.log -----\nWARNING: DATA RACE\nWrite at 0x00c000 by goroutine 7:\n  main.f()\n"
	if got != want {
		t.Fatalf("reports:\n%q\nwant\n%q", got, want)
	}
}
