package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/store"
	"github.com/insuranceflow/insuranceflow/temporalconn"
)

func TestExitCodeOf(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want exitCode
	}{
		{"nil", nil, exitOK},
		{"plain", errors.New("boom"), exitInternal},
		{"usage", &usageError{Err: errors.New("unknown flag")}, exitBadInput},
		{"validation, wrapped", fmt.Errorf("report: %w", &insurance.ValidationError{Problems: []insurance.FieldError{{Field: "stage", Message: "is required"}}}), exitBadInput},
		{"policyclient argument", &policyclient.ArgumentError{Field: "reason", Message: "too long"}, exitBadInput},
		{"bad database URL", fmt.Errorf("open database: %w", &store.URLError{Reason: "no scheme"}), exitBadInput},
		{"rejection, wrapped", fmt.Errorf("report: %w", &policyclient.Rejection{Reason: "illegal_transition"}), exitRejected},
		{"policy not found", fmt.Errorf("status: %w", policyclient.ErrNotFound), exitNotFound},
		{"store not found", fmt.Errorf("history: %w", store.ErrNotFound), exitNotFound},
		{"temporal unavailable", fmt.Errorf("report: %w: %w", policyclient.ErrUnavailable, errors.New("refused")), exitUnavailable},
		{"dial failed", &unavailableError{Backend: "temporal", Target: "x:1", Err: errors.New("refused")}, exitUnavailable},
		{"database cannot open", fmt.Errorf("open database: %w", &store.OpenError{Target: "/x.db", Err: errors.New("read-only")}), exitUnavailable},
		{"timed out", fmt.Errorf("status: %w", context.DeadlineExceeded), exitUnavailable},
		{"migration failed", &store.MigrationError{Version: 2, Err: errors.New("syntax")}, exitInternal},
		{"simulation with an error", &shownError{Err: &simulationError{Errors: 1, First: policyclient.ErrUnavailable}}, exitUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := exitCodeOf(tt.err); got != tt.want {
				t.Fatalf("exitCodeOf(%v)=%d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

func TestHelpDocumentsExitCodes(t *testing.T) {
	res := runWith(t, newFakePolicies(), "--help")
	if res.code != exitOK {
		t.Fatalf("exit=%d", res.code)
	}
	for i, d := range exitCodeDocs() {
		if int(d.code) != i {
			t.Fatalf("exit code docs out of order at %d: %d", i, d.code)
		}
		if line := fmt.Sprintf("\n  %d  %s\n", d.code, d.meaning); !strings.Contains(res.stdout, line) {
			t.Errorf("help lacks %q", line)
		}
	}
	for _, cmd := range []string{"report", "status", "list", "retry", "skip", "history", "simulate"} {
		if !strings.Contains(res.stdout, "\n  "+cmd+" ") {
			t.Errorf("help lacks command %s", cmd)
		}
	}
}

func TestGlobalFlagsFromEnvironment(t *testing.T) {
	env := map[string]string{
		"TEMPORAL_ADDRESS":   "temporal.test:7233",
		"TEMPORAL_NAMESPACE": "insurers",
		"TASK_QUEUE":         "q-env",
		"DATABASE_URL":       "sqlite:///srv/env.db",
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want config
	}{
		{
			name: "defaults",
			want: config{Address: "127.0.0.1:7233", Namespace: "default", TaskQueue: "insuranceflow",
				DatabaseURL: "sqlite://.data/insuranceflow.db", Timeout: 30 * time.Second, MaxFutureSkew: 10 * time.Minute, Settings: pipelined},
		},
		{
			name: "environment",
			env:  env,
			want: config{Address: "temporal.test:7233", Namespace: "insurers", TaskQueue: "q-env",
				DatabaseURL: "sqlite:///srv/env.db", Timeout: 30 * time.Second, MaxFutureSkew: 10 * time.Minute, Settings: pipelined},
		},
		{
			name: "flags beat environment",
			env:  env,
			args: []string{"--address", "flag:1", "--namespace", "ns", "--task-queue", "q-flag", "--database-url", "sqlite://f.db", "--timeout", "5s", "--json"},
			want: config{Address: "flag:1", Namespace: "ns", TaskQueue: "q-flag", DatabaseURL: "sqlite://f.db", Timeout: 5 * time.Second, JSON: true, MaxFutureSkew: 10 * time.Minute, Settings: pipelined},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &fakeBackends{ops: newFakePolicies()}
			res := cli{backends: b, env: tt.env}.run(t, append(tt.args, "list")...)
			if res.code != exitOK {
				t.Fatalf("exit=%d, stderr=%s", res.code, res.stderr)
			}
			got := b.cfg
			got.conn, got.Temporal = nil, temporalconn.Overrides{}
			if got != tt.want {
				t.Fatalf("config=%+v,\nwant %+v", b.cfg, tt.want)
			}
		})
	}
}

func TestBadCommandLines(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"frobnicate"}, "error: unknown command \"frobnicate\" for \"starter\"\nRun 'starter --help' for usage.\n"},
		{"unknown flag", []string{"status", "--verbose", "B1"}, "error: unknown flag: --verbose\nRun 'starter status --help' for usage.\n"},
		{"missing argument", []string{"retry"}, "error: accepts 1 arg(s), received 0\nRun 'starter retry --help' for usage.\n"},
		{"extra argument", []string{"list", "B1"}, "error: unknown command \"B1\" for \"starter list\"\nRun 'starter list --help' for usage.\n"},
		{"zero timeout", []string{"--timeout", "0s", "status", "B1"}, "error: --timeout must be positive, got 0s\nRun 'starter status --help' for usage.\n"},
		{"empty address", []string{"--address", " ", "list"}, "error: --address must not be empty\nRun 'starter list --help' for usage.\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &fakeBackends{ops: newFakePolicies()}
			res := cli{backends: b}.run(t, tt.args...)
			if res.code != exitBadInput {
				t.Fatalf("exit=%d, want %d; stderr=%s", res.code, exitBadInput, res.stderr)
			}
			if res.stderr != tt.want {
				t.Fatalf("stderr=%q, want %q", res.stderr, tt.want)
			}
			if b.policiesCalls+b.historyCalls != 0 {
				t.Fatalf("connected despite a bad command line")
			}
		})
	}
}

func TestCommandsConnectOnlyToWhatTheyNeed(t *testing.T) {
	tests := []struct {
		name                   string
		args                   []string
		wantPolicies, wantHist int
	}{
		{"list", []string{"list"}, 1, 0},
		{"status", []string{"status", "B1"}, 1, 0},
		{"history", []string{"history", "B1"}, 0, 1},
		{"invalid report", []string{"report", "--biz-id", "B1"}, 0, 0},
		{"help", []string{"report", "--help"}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &fakeBackends{ops: newFakePolicies(), historyErr: fmt.Errorf("history: %w", store.ErrNotFound)}
			cli{backends: b}.run(t, tt.args...)
			if b.policiesCalls != tt.wantPolicies || b.historyCalls != tt.wantHist {
				t.Fatalf("temporal dials=%d store opens=%d, want %d and %d", b.policiesCalls, b.historyCalls, tt.wantPolicies, tt.wantHist)
			}
			if b.closeCalls != 1 {
				t.Fatalf("Close called %d times, want 1", b.closeCalls)
			}
		})
	}
}

func TestJSONErrorDocument(t *testing.T) {
	res := runWith(t, newFakePolicies(), "--json", "status", "ghost")
	if res.code != exitNotFound {
		t.Fatalf("exit=%d, want %d", res.code, exitNotFound)
	}
	var doc errorDoc
	decodeOne(t, res.stdout, &doc)
	want := errorBody{Kind: "not_found", ExitCode: 5, Message: "status of ghost: policy ghost: policy not found"}
	if doc.Error.Kind != want.Kind || doc.Error.ExitCode != want.ExitCode || doc.Error.Message != want.Message {
		t.Fatalf("error=%+v, want %+v", doc.Error, want)
	}
	if res.stderr != "error: "+want.Message+"\n" {
		t.Fatalf("stderr=%q", res.stderr)
	}
}
