package ingress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/insuranceflow/insuranceflow/policyclient"
)

// fakeGate is down while err is set, and records what it observes.
type fakeGate struct {
	mu       sync.Mutex
	err      error
	observed []error
}

func (g *fakeGate) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

func (g *fakeGate) Observe(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.observed = append(g.observed, err)
}

func TestGateAnswersAtOnceWhileDown(t *testing.T) {
	fake := &fakePolicies{}
	gate := &fakeGate{err: policyclient.ErrTemporalDown}
	logs := &syncBuffer{}
	srv, err := New(Config{Policies: fake, Tokens: []string{token}, Gate: gate,
		Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	s := &testServer{url: ts.URL, fake: fake, logs: logs}

	for _, call := range []struct{ method, path, body string }{
		{"POST", "/v1/insurance-results", eventJSON(nil)},
		{"GET", "/v1/policies/" + bizID, ""},
		{"GET", "/v1/policies", ""},
		{"POST", "/v1/policies/" + bizID + "/callbacks/retry", `{"seq":3}`},
		{"POST", "/v1/policies/" + bizID + "/callbacks/skip", `{"seq":3}`},
	} {
		r := s.do(t, call.method, call.path, call.body, nil)
		wantError(t, r, http.StatusServiceUnavailable, "unavailable")
		if r.header.Get("Retry-After") == "" {
			t.Errorf("%s %s: 503 without Retry-After", call.method, call.path)
		}
	}
	if len(fake.reported)+len(fake.statused)+len(fake.listed)+len(fake.operated) != 0 {
		t.Fatalf("the policy client was called while the gate was shut")
	}
	if strings.Contains(logs.String(), `"msg":"request failed"`) {
		t.Errorf("a held-back request was logged as failed:\n%s", logs)
	}

	// Up again: calls go through and their outcomes are observed.
	gate.mu.Lock()
	gate.err = nil
	gate.mu.Unlock()
	fake.err = fmt.Errorf("report: %w: %w", policyclient.ErrUnavailable, context.DeadlineExceeded)
	wantError(t, s.do(t, "POST", "/v1/insurance-results", eventJSON(nil), nil), http.StatusServiceUnavailable, "unavailable")
	if len(fake.reported) != 1 {
		t.Fatalf("reports=%d, want 1", len(fake.reported))
	}
	if len(gate.observed) != 1 || !errors.Is(gate.observed[0], policyclient.ErrUnavailable) {
		t.Fatalf("observed=%v, want the outage", gate.observed)
	}
}
