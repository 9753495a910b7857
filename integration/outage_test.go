package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/devstack"
)

// outageCallTimeout is the worker's TEMPORAL_CALL_TIMEOUT in
// TestTemporalOutageIsAnsweredFast.
const outageCallTimeout = 3 * time.Second

// TestTemporalOutageIsAnsweredFast stops a real Temporal dev server under a
// running worker. A report then gets 503 unavailable (with Retry-After)
// within TEMPORAL_CALL_TIMEOUT, not the 20 s it used to wait; once the
// worker knows Temporal is down the next report is answered well under the
// timeout; and when the server is back, reports are accepted again. It
// runs a stack of its own, so the shared one never loses its server.
func TestTemporalOutageIsAnsweredFast(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	s, err := devstack.Start(ctx, devstack.Options{
		Dir:         t.TempDir(),
		TemporalBin: temporalBin(),
		// The shared stack's binaries: built once per run.
		BinDir:    filepath.Dir(env.BinPath("worker")),
		WorkerEnv: []string{"TEMPORAL_CALL_TIMEOUT=" + outageCallTimeout.String()},
	})
	if err != nil {
		t.Fatalf("start a stack of its own: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- worker log ---\n%s", s.LogTail(devstack.ProcWorker, 40))
		}
		s.Stop()
	})

	biz := newBizID("OUT")
	send := func(stage, minute int) (int, string, time.Duration, http.Header) {
		t.Helper()
		b, err := json.Marshal(event(biz, stage, 1, minute))
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.IngressURL+"/v1/insurance-results", strings.NewReader(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+s.Token)
		req.Header.Set("Content-Type", "application/json")
		start := time.Now()
		resp, err := httpClient.Do(req)
		took := time.Since(start)
		if err != nil {
			t.Fatalf("report after %s: %v", took, err)
		}
		defer resp.Body.Close()
		var e apiError
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e.Error.Code, took, resp.Header
	}

	if code, _, _, _ := send(1, 0); code != http.StatusAccepted {
		t.Fatalf("with Temporal up: status %d, want 202", code)
	}
	if err := s.StopTemporal(); err != nil {
		t.Fatal(err)
	}

	code, errCode, took, header := send(2, 1)
	if code != http.StatusServiceUnavailable || errCode != "unavailable" || header.Get("Retry-After") == "" {
		t.Fatalf("first report with Temporal down: status %d code %q Retry-After %q, want 503 unavailable with Retry-After",
			code, errCode, header.Get("Retry-After"))
	}
	// The timeout plus room for a loaded machine; the old answer took 20 s.
	if limit := outageCallTimeout + 3*time.Second; took > limit {
		t.Fatalf("first report with Temporal down answered after %s, want within %s", took, limit)
	}
	t.Logf("first report with Temporal down: 503 after %s", took)

	code, errCode, took, _ = send(2, 1)
	if code != http.StatusServiceUnavailable || errCode != "unavailable" {
		t.Fatalf("second report with Temporal down: status %d code %q, want 503 unavailable", code, errCode)
	}
	if took > time.Second {
		t.Fatalf("second report with Temporal down answered after %s, want well under the %s timeout (under 1s): the worker knows Temporal is down", took, outageCallTimeout)
	}
	t.Logf("second report with Temporal down: 503 after %s", took)

	if err := s.StartTemporal(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "a report accepted once Temporal is back", func() (bool, string) {
		code, errCode, took, _ := send(2, 1)
		return code == http.StatusAccepted, strings.Join([]string{http.StatusText(code), errCode, took.String()}, " ")
	})
}
