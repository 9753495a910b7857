// Package integration drives the real thing: the pinned Temporal dev server,
// topsim and the worker, each as its own process, talking over real HTTP and
// gRPC, with a real SQLite store. TestMain starts one stack for the package.
package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
)

const (
	testToken     = "integration-token"
	testAppKey    = "integration-app-key"
	testAppSecret = "integration-app-secret"
)

// env is the stack shared by the package's tests.
var env *stack

type stack struct {
	dir          string
	bin          string
	temporalAddr string
	ingressURL   string
	topsimURL    string
	databaseURL  string
	metricsAddr  string // where the main worker serves /metrics
	temporal     client.Client
	procs        []*process
	worker       *process
}

type process struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	s, err := startStack()
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration: starting the stack:", err)
		if s != nil {
			s.dumpLogs()
			s.stop()
		}
		return 1
	}
	env = s
	code := m.Run()
	if code != 0 {
		s.dumpLogs()
	}
	s.stop()
	return code
}

func startStack() (*stack, error) {
	dir, err := os.MkdirTemp("", "insuranceflow-it-")
	if err != nil {
		return nil, err
	}
	s := &stack{dir: dir, bin: filepath.Join(dir, "bin")}
	if err := s.build(); err != nil {
		return s, err
	}

	if os.Getenv("TEMPORAL_BIN") == "" {
		// Build the pinned dev server once; `make test` passes it in.
		os.Setenv("TEMPORAL_BIN", filepath.Join(s.bin, "temporal"))
		if err := run("go", "-C", "../tools", "build", "-o", temporalBin(), "github.com/temporalio/cli/cmd/temporal"); err != nil {
			return s, fmt.Errorf("building the pinned Temporal dev server (set TEMPORAL_BIN to skip): %w", err)
		}
	}
	if addr := os.Getenv("IT_TEMPORAL_ADDRESS"); addr != "" {
		// A server someone else runs (`make test-cluster`: Temporal on
		// PostgreSQL), with the namespace and search attributes registered.
		s.temporalAddr = addr
	} else if err := s.startDevServer(); err != nil {
		return s, err
	}
	if err := waitFor(60*time.Second, func() error {
		c, err := client.Dial(client.Options{HostPort: s.temporalAddr, Logger: quietLogger{}})
		if err != nil {
			return err
		}
		if _, err := c.CheckHealth(context.Background(), nil); err != nil {
			c.Close()
			return err
		}
		s.temporal = c
		return nil
	}); err != nil {
		return s, fmt.Errorf("temporal server at %s not healthy: %w", s.temporalAddr, err)
	}

	topsimAddr := fmt.Sprintf("127.0.0.1:%d", freePort())
	s.topsimURL = "http://" + topsimAddr
	if _, err := s.start("topsim", []string{"TOP_APP_KEY=" + testAppKey, "TOP_APP_SECRET=" + testAppSecret},
		filepath.Join(s.bin, "topsim"), "-addr", topsimAddr, "-seed", "7",
		"-receipts", filepath.Join(dir, "receipts.jsonl")); err != nil {
		return s, err
	}
	if err := waitHTTP(s.topsimURL + "/healthz"); err != nil {
		return s, fmt.Errorf("topsim: %w", err)
	}

	s.databaseURL = os.Getenv("IT_DATABASE_URL")
	if s.databaseURL == "" {
		s.databaseURL = "sqlite://" + filepath.Join(dir, "insuranceflow.db")
	}
	ingressAddr := fmt.Sprintf("127.0.0.1:%d", freePort())
	s.ingressURL = "http://" + ingressAddr
	s.metricsAddr = fmt.Sprintf("127.0.0.1:%d", freePort())
	if err := s.startWorker(ingressAddr); err != nil {
		return s, err
	}
	return s, nil
}

// startDevServer starts the pinned Temporal dev server on free ports, its
// state in a WAL-mode SQLite file in the stack's directory.
func (s *stack) startDevServer() error {
	grpcPort, uiPort, httpPort, metricsPort := freePort(), freePort(), freePort(), freePort()
	s.temporalAddr = fmt.Sprintf("127.0.0.1:%d", grpcPort)
	_, err := s.start("temporal", nil, temporalBin(), "server", "start-dev",
		"--ip", "127.0.0.1", "--port", fmt.Sprint(grpcPort), "--ui-port", fmt.Sprint(uiPort),
		"--http-port", fmt.Sprint(httpPort), "--metrics-port", fmt.Sprint(metricsPort), "--headless",
		"--db-filename", filepath.Join(s.dir, "temporal.db"),
		"--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=NORMAL",
		"--search-attribute", "BizId=Keyword", "--search-attribute", "PolicyState=Keyword",
		"--search-attribute", "InsuranceType=Keyword", "--search-attribute", "CallbackState=Keyword",
		"--log-level", "error")
	return err
}

// workerEnv is the worker's configuration in the tests: short retry intervals
// and a short TOP call timeout so fault tests finish in seconds.
func (s *stack) workerEnv(ingressAddr string) []string {
	return []string{
		"TEMPORAL_ADDRESS=" + s.temporalAddr,
		"DATABASE_URL=" + s.databaseURL,
		"TOP_GATEWAY_URL=" + s.topsimURL + "/router/rest",
		"TOP_APP_KEY=" + testAppKey,
		"TOP_APP_SECRET=" + testAppSecret,
		"TOP_CALL_TIMEOUT=2s",
		"HTTP_ADDR=" + ingressAddr,
		"INGRESS_TOKENS=" + testToken,
		"INGRESS_TOP_APP_KEY=" + testRouterAppKey,
		"INGRESS_TOP_APP_SECRET=" + testRouterAppSecret,
		"RETRY_INITIAL_INTERVAL=200ms",
		"RETRY_MAX_INTERVAL=1s",
		"LOG_LEVEL=info",
	}
}

func (s *stack) startWorker(ingressAddr string) error {
	// Metrics only on the main worker: a second worker started with
	// workerEnv would otherwise try to bind the same port.
	workerEnv := append(s.workerEnv(ingressAddr),
		"METRICS_ADDR="+s.metricsAddr,
		"METRICS_PARKED_INTERVAL=300ms")
	p, err := s.start("worker", workerEnv, filepath.Join(s.bin, "worker"))
	if err != nil {
		return err
	}
	s.worker = p
	if err := waitHTTP(s.ingressURL + "/readyz"); err != nil {
		return fmt.Errorf("worker ingress not ready: %w", err)
	}
	return nil
}

// temporalBin is the pinned Temporal CLI (dev server and operator commands).
func temporalBin() string { return os.Getenv("TEMPORAL_BIN") }

func (s *stack) build() error {
	return run("go", "build", "-o", s.bin+"/", "../worker", "../topsim", "../starter")
}

func (s *stack) start(name string, extraEnv []string, bin string, args ...string) (*process, error) {
	logf, err := os.Create(filepath.Join(s.dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), extraEnv...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logf}
	s.procs = append(s.procs, p)
	return p, nil
}

func (s *stack) stop() {
	if s.temporal != nil {
		s.temporal.Close()
	}
	for i := len(s.procs) - 1; i >= 0; i-- {
		p := s.procs[i]
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Signal(os.Interrupt)
			done := make(chan struct{})
			go func() { _ = p.cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = p.cmd.Process.Kill()
				<-done
			}
		}
		p.log.Close()
	}
	if os.Getenv("KEEP_IT_DIR") == "" {
		os.RemoveAll(s.dir)
	}
}

func (s *stack) dumpLogs() {
	for _, name := range []string{"worker", "topsim", "temporal"} {
		b, err := os.ReadFile(filepath.Join(s.dir, name+".log"))
		if err != nil {
			continue
		}
		if len(b) > 8000 {
			b = b[len(b)-8000:]
		}
		fmt.Fprintf(os.Stderr, "----- %s log (tail) -----\n%s\n", name, b)
	}
}

func run(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitFor(d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return err
}

func waitHTTP(url string) error {
	return waitFor(60*time.Second, func() error {
		resp, err := httpClient.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	})
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
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, env.ingressURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
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

// quietLogger keeps the SDK's client logs out of test output.
type quietLogger struct{}

func (quietLogger) Debug(string, ...interface{}) {}
func (quietLogger) Info(string, ...interface{})  {}
func (quietLogger) Warn(string, ...interface{})  {}
func (quietLogger) Error(string, ...interface{}) {}

// httpClient bounds every test request; nothing here should take 30 s.
var httpClient = &http.Client{Timeout: 30 * time.Second}
