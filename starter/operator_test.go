package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// TestOperatorActionCarriesAnIdempotencyKey: the key given is the one sent;
// without one, every invocation sends a new key the workflow accepts.
func TestOperatorActionCarriesAnIdempotencyKey(t *testing.T) {
	ops := newFakePolicies()
	c := cli{backends: &fakeBackends{ops: ops}}
	reportAll(t, c, "B-KEY", [2]string{"pre_insure", "success"})
	park := func() { ops.status["B-KEY"].Events[0].Callback = workflows.EventParked }

	park()
	if res := c.run(t, "retry", "B-KEY", "--idempotency-key", "ticket-4711.retry"); res.code != exitOK {
		t.Fatalf("retry with a key: exit=%d stderr=%q", res.code, res.stderr)
	}
	for range 2 {
		park()
		if res := c.run(t, "skip", "B-KEY"); res.code != exitOK {
			t.Fatalf("skip without a key: exit=%d stderr=%q", res.code, res.stderr)
		}
	}
	if len(ops.keys) != 3 || ops.keys[0] != "ticket-4711.retry" {
		t.Fatalf("keys sent = %q, want the given one first", ops.keys)
	}
	for _, k := range ops.keys[1:] {
		if !strings.HasPrefix(k, "cli-") || insurance.CheckRequestID(k) != "" {
			t.Errorf("made-up key %q: want cli-… within the request id rules (%s)", k, insurance.CheckRequestID(k))
		}
	}
	if ops.keys[1] == ops.keys[2] {
		t.Errorf("two invocations shared the made-up key %q", ops.keys[1])
	}
}

// TestOperatorActionRefusesABadKey: a bad key is bad input (exit 2, naming
// the flag) before Temporal is dialled, so it is reported as such even when
// Temporal is unreachable.
func TestOperatorActionRefusesABadKey(t *testing.T) {
	b := &fakeBackends{opsErr: &unavailableError{Backend: "temporal", Target: "127.0.0.1:7233", Err: fmt.Errorf("connection refused")}}
	res := cli{backends: b}.run(t, "retry", "B1", "--seq", "1", "--idempotency-key", "no spaces")
	if res.code != exitBadInput || !strings.Contains(res.stderr, "--idempotency-key must contain only") {
		t.Fatalf("exit=%d stderr=%q, want exit %d naming --idempotency-key", res.code, res.stderr, exitBadInput)
	}
	if b.policiesCalls != 0 {
		t.Fatalf("dialled Temporal for a bad key")
	}
}

// TestLostAnswerNamesTheKey: when no answer came back the action may have
// been applied, so the error tells the operator how to re-send it safely;
// a definite answer from the workflow does not.
func TestLostAnswerNamesTheKey(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		code exitCode
		hint bool
	}{
		{"temporal unreachable", fmt.Errorf("skip-callback on policy P1: %w", policyclient.ErrUnavailable), exitUnavailable, true},
		{"timed out", fmt.Errorf("skip-callback on policy P1: %w", context.DeadlineExceeded), exitUnavailable, true},
		{"workflow: store down, not applied", temporal.NewApplicationError("the store did not record the skip; try again", workflows.ErrorStoreUnavailable), exitUnavailable, false},
		{"workflow: seq mismatch", temporal.NewApplicationError("callback #2 is parked, not #1", workflows.ReasonSeqMismatch), exitRejected, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ops := failingSkip{fakePolicies: newFakePolicies(), err: tt.err}
			res := runWith(t, ops, "skip", "P1", "--seq", "1", "--idempotency-key", "k-1")
			if res.code != tt.code {
				t.Fatalf("exit=%d, want %d; stderr=%q", res.code, tt.code, res.stderr)
			}
			const hint = "re-run with --seq 1 --idempotency-key k-1"
			if got := strings.Contains(res.stderr, hint); got != tt.hint {
				t.Fatalf("stderr=%q; contains %q: %v, want %v", res.stderr, hint, got, tt.hint)
			}
		})
	}
}
