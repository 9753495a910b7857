// Package integration drives the real thing: the pinned Temporal dev server,
// topsim and the worker, each as its own process, talking over real HTTP and
// gRPC, with a real SQLite store. TestMain starts one stack for the package
// with devstack, the project's one launcher.
package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/devstack"
)

const (
	testToken     = "integration-token"
	testAppKey    = "integration-app-key"
	testAppSecret = "integration-app-secret"
)

// env is the stack shared by the package's tests. Its main worker serves
// /metrics at env.MetricsAddr.
var env *devstack.Stack

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "insuranceflow-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	// The directory is ours, not devstack's, so KEEP_IT_DIR can keep it.
	defer func() {
		if os.Getenv("KEEP_IT_DIR") == "" {
			os.RemoveAll(dir)
		}
	}()
	clientsFile, err := writeClientsFile(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	sink = newSpanSink()
	defer sink.srv.Close()
	s, err := startStack(dir, clientsFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration: starting the stack:", err)
		dumpLogs(dir)
		return 1
	}
	env = s
	code := m.Run()
	if reportViolations() {
		code = 1
	}
	if code == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := checkTOPQPS(ctx, s); err != nil {
			fmt.Fprintln(os.Stderr, "integration:", err)
			code = 1
		}
		cancel()
	}
	if code != 0 {
		dumpLogs(dir)
	}
	if err := s.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "integration: stopping the stack:", err)
	}
	// With IT_RACE the processes are race-built; the detector reports in
	// their logs and lets them go on, so the suite fails here.
	races, err := s.RaceReports()
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration: reading the logs for race reports:", err)
		code = 1
	}
	if races != "" {
		fmt.Fprintln(os.Stderr, "integration: the race detector reported data races in the stack's processes:\n"+races)
		code = 1
	}
	return code
}

// Named callers of the ingress with narrow scopes (INGRESS_CLIENTS_FILE),
// beside the stack's all-scopes development token.
const (
	reporterName  = "claims-it"
	reporterToken = "integration-reporter-token"
	operatorName  = "ops-it"
	operatorToken = "integration-operator-token"
)

// writeClientsFile writes the callers file: a reporter that may only
// report, and an operator that may read and operate, its token given as a
// digest as production files should.
func writeClientsFile(dir string) (string, error) {
	digest := sha256.Sum256([]byte(operatorToken))
	content := "# integration callers\n" +
		reporterName + ":report:" + reporterToken + "\n" +
		operatorName + ":read,operate:sha256:" + hex.EncodeToString(digest[:]) + "\n"
	path := filepath.Join(dir, "ingress-clients")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return "", fmt.Errorf("write the ingress clients file: %w", err)
	}
	return path, nil
}

func startStack(dir, clientsFile string) (*devstack.Stack, error) {
	if temporalBin() == "" {
		// Build the pinned dev server once; `make test` passes it in. It
		// is needed with an external server too, for -record-history.
		os.Setenv("TEMPORAL_BIN", filepath.Join(dir, "bin", "temporal"))
		cmd := exec.Command("go", "-C", "../tools", "build", "-o", temporalBin(), "github.com/temporalio/cli/cmd/temporal")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("building the pinned Temporal dev server (set TEMPORAL_BIN to skip): %w\n%s", err, out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return devstack.Start(ctx, devstack.Options{
		Dir:         dir,
		TemporalBin: temporalBin(),
		// A server someone else runs (`make test-cluster`: Temporal on
		// PostgreSQL), with the namespace and search attributes registered.
		TemporalAddress: os.Getenv("IT_TEMPORAL_ADDRESS"),
		// Its Prometheus endpoint, for the tests that read the server's
		// eager-dispatch counts.
		TemporalMetricsAddr: os.Getenv("IT_TEMPORAL_METRICS_ADDR"),
		// Its TLS settings (`make test-cluster` runs it with mutual TLS):
		// IT_TEMPORAL_TLS_… become the processes' TEMPORAL_TLS_….
		TemporalEnv: itTemporalEnv(os.Environ()),
		DatabaseURL: os.Getenv("IT_DATABASE_URL"),
		// `make test-race-it`: the worker, topsim and starter built with
		// the race detector.
		Race:       os.Getenv("IT_RACE") != "",
		ModuleRoot: "..",
		TopsimSeed: 7,
		Token:      testToken,
		AppKey:     testAppKey,
		AppSecret:  testAppSecret,
		Metrics:    true,
		// Every worker keeps to it, and topsim bans like TOP above it.
		TOPQPS: testTOPQPS,
		// Short retry intervals and TOP timeout are devstack's own; the
		// TOP-compatible endpoint and a quick parked gauge are the tests'.
		WorkerEnv: append([]string{
			"INGRESS_TOP_APP_KEY=" + testRouterAppKey,
			"INGRESS_TOP_APP_SECRET=" + testRouterAppSecret,
			"METRICS_PARKED_INTERVAL=300ms",
			"INGRESS_CLIENTS_FILE=" + clientsFile,
			// A wide margin: this suite runs beside others on a small
			// machine, where a process can stall for longer than the
			// default 50 ms between a call's admission and its arrival.
			// What is tested is that the limit holds across workers.
			"TOP_QPS_MARGIN=300ms",
			// No sweeper beside the tests that cancel or terminate runs and
			// then check what the next event does; TestSweeperResumesStoppedRuns
			// runs a worker with one on its own task queue.
			"SWEEP_INTERVAL=0",
		}, sink.env()...),
	})
}

// itTemporalEnv turns IT_TEMPORAL_X=v into TEMPORAL_X=v, except the
// address, which is the stack's own option.
func itTemporalEnv(environ []string) []string {
	var out []string
	for _, kv := range environ {
		if rest, ok := strings.CutPrefix(kv, "IT_TEMPORAL_"); ok && !strings.HasPrefix(rest, "ADDRESS=") {
			out = append(out, "TEMPORAL_"+rest)
		}
	}
	return out
}

// temporalBin is the pinned Temporal CLI (dev server and operator commands).
func temporalBin() string { return os.Getenv("TEMPORAL_BIN") }

// dumpLogs prints the tail of each process's log in dir after a failed
// start or run; it reads the files, as the stack may not exist.
func dumpLogs(dir string) {
	for _, name := range []string{devstack.ProcWorker, devstack.ProcTopsim, devstack.ProcTemporal} {
		b, err := os.ReadFile(filepath.Join(dir, name+".log"))
		if err != nil {
			continue
		}
		if len(b) > 8000 {
			b = b[len(b)-8000:]
		}
		fmt.Fprintf(os.Stderr, "----- %s log (tail) -----\n%s\n", name, b)
	}
}

// extraWorker starts a worker of the test's own (its task queue, settings
// and notifications in settings), stopped when the test ends, and returns
// its ingress URL.
func extraWorker(ctx context.Context, t *testing.T, name string, settings []string) string {
	t.Helper()
	url, stop, err := env.StartExtraWorker(ctx, name, settings)
	if err != nil {
		t.Fatalf("worker %s not ready: %v", name, err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("stopping worker %s: %v", name, err)
		}
	})
	return url
}

// reportVia reports body through the ingress at url; anything but 202
// Accepted fails the test.
func reportVia(t *testing.T, url string, body map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body) // a map of strings and numbers always encodes
	if code, out := send(t, http.MethodPost, url+"/v1/insurance-results", testToken, b); code != http.StatusAccepted {
		t.Fatalf("report %v: %d %s", body, code, out)
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(150 * time.Millisecond)
	}
	t.Fatalf("%s: not reached within %s; last: %s", what, d, last)
}

// call sends a JSON request to the ingress with the test token and decodes the answer.
func call(t *testing.T, method, path string, body any, out any) int {
	t.Helper()
	return callAs(t, testToken, method, path, body, out)
}

// callAs is call with another caller's bearer token.
func callAs(t *testing.T, token, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, env.IngressURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decoding %s: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode
}

// httpClient bounds every test request; nothing here should take 30 s.
// Its transport checks every request to an ingress and every answer
// against api/openapi.yaml (contract_test.go).
var httpClient = &http.Client{Timeout: 30 * time.Second, Transport: contractTransport{c: mustLoadContract(), next: http.DefaultTransport}}

func mustLoadContract() *contract {
	c, err := loadContract()
	if err != nil {
		panic(err) // the document is broken: nothing here can be checked
	}
	return c
}
