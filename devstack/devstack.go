// Package devstack starts the whole insuranceflow stack as real processes —
// the pinned Temporal dev server (or an external server), topsim as the TOP
// gateway and the worker with its HTTP ingress — for programs and tests that
// need the real thing: the load benchmark, the chaos suite. It owns the
// processes' lifecycle (each in its own process group, so nothing outlives
// Stop), their ports and logs, and the few HTTP calls every driver of the
// stack needs (report an event, read topsim's receipts, set its faults).
package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/insuranceflow/insuranceflow/deploy"
	"github.com/insuranceflow/insuranceflow/temporalconn"
	"github.com/insuranceflow/insuranceflow/topsim/simulator"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// Defaults for the credentials a stack uses when Options leaves them empty.
// They are dev values: the stack is local and throwaway.
const (
	DefaultToken     = "devstack-token"
	DefaultAppKey    = "devstack-app-key"
	DefaultAppSecret = "devstack-app-secret"
	// DefaultNotifySecret is the whsec_ secret topsim's notification
	// receiver verifies with, and a notifying worker signs with: base64
	// of "devstack-notify-secret-32bytes!!", a development value only.
	DefaultNotifySecret = "whsec_ZGV2c3RhY2stbm90aWZ5LXNlY3JldC0zMmJ5dGVzISE="
)

// readyTimeout bounds how long Start waits for one process to answer.
const readyTimeout = 90 * time.Second

// stopGrace is how long a process gets after SIGTERM before SIGKILL.
const stopGrace = 10 * time.Second

// Process names, as used by LogTail and in log file names (<name>.log).
const (
	ProcTemporal = "temporal"
	ProcTopsim   = "topsim"
	ProcWorker   = "worker"
)

// Receipt is one callback topsim accepted, as /_sim/callbacks lists it.
type Receipt = simulator.Receipt

// Options configures a stack. Only TemporalBin is required (when the stack
// starts its own dev server).
type Options struct {
	// Dir holds logs, SQLite files and built binaries. "" = a temporary
	// directory, removed by Stop; a given Dir is kept.
	Dir string
	// TemporalBin is the pinned Temporal CLI (.bin/temporal); required
	// unless TemporalAddress names an external server.
	TemporalBin string
	// TemporalAddress is an external server's host:port, with the
	// namespace "default" and the search attributes registered. "" = start
	// a dev server with its SQLite (WAL) file in Dir.
	TemporalAddress string
	// TemporalMetricsAddr is that external server's Prometheus /metrics
	// host:port, "" when unknown; a dev server's is found by the stack.
	TemporalMetricsAddr string
	// TemporalEnv is how the stack's processes and clients reach an
	// external server beyond its address: TEMPORAL_* settings of the SDK's
	// environment configuration (temporalconn), e.g. the
	// TEMPORAL_TLS_CLIENT_CERT_PATH, _KEY_PATH, _SERVER_CA_CERT_PATH and
	// _SERVER_NAME of a cluster with mutual TLS. The processes get exactly
	// these; TEMPORAL_* variables of the caller's own environment are not
	// passed on.
	TemporalEnv []string
	// DatabaseURL is the worker's store; "" = sqlite in Dir.
	DatabaseURL string
	// BinDir holds prebuilt worker, topsim and starter binaries; "" = go
	// build them from ModuleRoot into Dir/bin.
	BinDir string
	// ModuleRoot is the insuranceflow module; "" = found from the current
	// directory with `go env GOMOD`.
	ModuleRoot string
	// Race builds the binaries with the race detector (BinDir must be
	// empty): a data race in the worker then prints "WARNING: DATA RACE"
	// to its log (RaceReports finds it) and the worker goes on.
	Race bool
	// WorkerEnv is extra KEY=VALUE for the worker; it overrides the
	// stack's own settings (e.g. RETRY_INITIAL_INTERVAL=1s).
	WorkerEnv []string
	// Metrics makes the main worker serve Prometheus /metrics on a free
	// port, Stack.MetricsAddr. Extra workers never serve metrics: they
	// would contend for the same port.
	Metrics bool
	// TOPQPS, when positive, is the stack's TOP_QPS: every worker gets it,
	// and topsim enforces it as TOP would (-qps-limit), banning with code 7
	// any call over it in a sliding second.
	TOPQPS int
	// Notify makes every worker of the stack notify topsim's receiver
	// (Stack.NotificationsURL) of every callback outcome. topsim always
	// runs the receiver, so one extra worker can notify it too (see
	// NotifyEnv); workers do not by default, so a lifecycle costs what it
	// costs without notifications.
	Notify bool
	// TopsimArgs are extra topsim flags (e.g. -reject-pattern PARK).
	TopsimArgs []string
	// TopsimSeed seeds topsim's fault injection.
	TopsimSeed int64
	// Token is the ingress bearer token; "" = DefaultToken.
	Token string
	// AppKey and AppSecret are the TOP credentials shared by topsim and
	// the worker; "" = DefaultAppKey / DefaultAppSecret.
	AppKey, AppSecret string
	// Log receives one progress line per step; nil = discard.
	Log io.Writer
}

// Stack is a running stack. Its methods are safe for concurrent use.
type Stack struct {
	TemporalAddress string
	IngressURL      string
	TopsimURL       string
	DatabaseURL     string
	// MetricsAddr is the main worker's /metrics host:port; "" unless
	// Options.Metrics.
	MetricsAddr string
	// TemporalMetricsAddr is the server's Prometheus /metrics host:port:
	// the dev server's, or Options.TemporalMetricsAddr with an external
	// server.
	TemporalMetricsAddr string
	Dir                 string
	Token               string
	// Temporal is a client dialled to TemporalAddress (namespace
	// "default"); Stop closes it.
	Temporal client.Client

	opts        Options
	ownDir      bool
	binDir      string
	ingressAddr string
	devServer   []string // the dev server's arguments; nil with an external server
	appKey      string
	appSecret   string

	mu    sync.Mutex
	procs map[string]*process
	// extra names the running extra workers' processes, in start order.
	extra []string
}

// StartError is a process that did not come up; Log is the tail of its log.
type StartError struct {
	Process string
	Err     error
	Log     string
}

func (e *StartError) Error() string {
	msg := fmt.Sprintf("devstack: %s did not start: %v", e.Process, e.Err)
	if e.Log != "" {
		msg += "\n--- " + e.Process + " log (tail) ---\n" + e.Log
	}
	return msg
}

func (e *StartError) Unwrap() error { return e.Err }

// OptionsError is an unusable Options field.
type OptionsError struct {
	Field   string
	Problem string
}

func (e *OptionsError) Error() string { return "devstack: Options." + e.Field + ": " + e.Problem }

// Start builds (unless BinDir is given) and starts the stack, and returns
// once the worker's /readyz answers. On error everything started is stopped.
func Start(ctx context.Context, o Options) (*Stack, error) {
	if o.TemporalAddress == "" && o.TemporalBin == "" {
		return nil, &OptionsError{Field: "TemporalBin", Problem: "required to start a dev server (the pinned .bin/temporal; `make temporal` builds it)"}
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	// The processes run in the stack's directory, where a relative path
	// would mean something else than it does to the caller.
	for _, p := range []*string{&o.Dir, &o.TemporalBin, &o.BinDir, &o.ModuleRoot} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return nil, &OptionsError{Field: "paths", Problem: fmt.Sprintf("%s: %v", *p, err)}
		}
		*p = abs
	}
	s := &Stack{
		opts:      o,
		Token:     firstNonEmpty(o.Token, DefaultToken),
		appKey:    firstNonEmpty(o.AppKey, DefaultAppKey),
		appSecret: firstNonEmpty(o.AppSecret, DefaultAppSecret),
		procs:     map[string]*process{},
	}
	if err := s.start(ctx); err != nil {
		_ = s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Stack) start(ctx context.Context) error {
	o := s.opts
	s.Dir = o.Dir
	if s.Dir == "" {
		d, err := os.MkdirTemp("", "insuranceflow-devstack-")
		if err != nil {
			return fmt.Errorf("devstack: temporary directory: %w", err)
		}
		s.Dir, s.ownDir = d, true
	} else if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return fmt.Errorf("devstack: directory: %w", err)
	}

	s.binDir = o.BinDir
	if o.Race && s.binDir != "" {
		return &OptionsError{Field: "Race", Problem: "the race detector needs a build: leave BinDir empty"}
	}
	if s.binDir == "" {
		if err := s.build(ctx); err != nil {
			return err
		}
	}
	for _, b := range []string{"worker", "topsim"} {
		if _, err := os.Stat(filepath.Join(s.binDir, b)); err != nil {
			return &OptionsError{Field: "BinDir", Problem: fmt.Sprintf("no %s binary: %v", b, err)}
		}
	}

	s.TemporalAddress = o.TemporalAddress
	s.TemporalMetricsAddr = o.TemporalMetricsAddr
	if s.TemporalAddress == "" {
		if err := s.startDevServer(ctx); err != nil {
			return err
		}
	} else if err := s.waitTemporal(ctx, nil); err != nil {
		return &StartError{Process: "temporal client", Err: err}
	}
	if s.Temporal == nil {
		opts, err := s.ClientOptions()
		if err != nil {
			return err
		}
		c, err := client.DialContext(ctx, opts)
		if err != nil {
			return fmt.Errorf("devstack: dial Temporal at %s: %w", s.TemporalAddress, err)
		}
		s.Temporal = c
	}

	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	if o.Metrics {
		s.MetricsAddr = fmt.Sprintf("127.0.0.1:%d", ports[2])
	}
	topsimAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	s.TopsimURL = "http://" + topsimAddr
	args := []string{"-addr", topsimAddr, "-seed", fmt.Sprint(o.TopsimSeed), "-receipts", s.ReceiptsPath()}
	if o.TOPQPS > 0 {
		args = append(args, "-qps-limit", fmt.Sprint(o.TOPQPS))
	}
	args = append(args, o.TopsimArgs...)
	fmt.Fprintf(s.opts.Log, "devstack: starting topsim on %s\n", s.TopsimURL)
	p, err := s.spawn(ProcTopsim, s.topsimEnv(),
		filepath.Join(s.binDir, "topsim"), args...)
	if err != nil {
		return err
	}
	if err := waitHTTP(ctx, s.TopsimURL+"/healthz", p); err != nil {
		return &StartError{Process: ProcTopsim, Err: err, Log: s.LogTail(ProcTopsim, 30)}
	}

	s.DatabaseURL = o.DatabaseURL
	if s.DatabaseURL == "" {
		s.DatabaseURL = "sqlite://" + filepath.Join(s.Dir, "insuranceflow.db")
	}
	s.ingressAddr = fmt.Sprintf("127.0.0.1:%d", ports[1])
	s.IngressURL = "http://" + s.ingressAddr
	return s.StartWorker(ctx)
}

// build compiles the worker, topsim and starter into Dir/bin.
func (s *Stack) build(ctx context.Context) error {
	root := s.opts.ModuleRoot
	if root == "" {
		out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
		if err != nil {
			return fmt.Errorf("devstack: locate the module (set Options.ModuleRoot): %w", err)
		}
		gomod := strings.TrimSpace(string(out))
		if gomod == "" || gomod == os.DevNull {
			return &OptionsError{Field: "ModuleRoot", Problem: "not given and the current directory is not in a Go module"}
		}
		root = filepath.Dir(gomod)
	}
	s.binDir = filepath.Join(s.Dir, "bin")
	fmt.Fprintf(s.opts.Log, "devstack: building worker, topsim, starter into %s\n", s.binDir)
	args := []string{"build", "-o", s.binDir + string(filepath.Separator)}
	if s.opts.Race {
		args = append(args, "-race")
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "./worker", "./topsim", "./starter")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("devstack: go build in %s: %w\n%s", root, err, out)
	}
	return nil
}

// workerEnv is the main worker's configuration: the stack's addresses and
// credentials, short retry intervals and TOP timeout so faults resolve in
// seconds, its metrics address, then Options.WorkerEnv, which wins.
func (s *Stack) workerEnv() []string {
	env := s.baseWorkerEnv(s.ingressAddr)
	if s.MetricsAddr != "" {
		env = append(env, "METRICS_ADDR="+s.MetricsAddr)
	}
	return append(env, s.opts.WorkerEnv...)
}

// baseWorkerEnv is what every worker of the stack shares, with its ingress
// on ingressAddr.
func (s *Stack) baseWorkerEnv(ingressAddr string) []string {
	env := append(s.TemporalEnv(), []string{
		// Explicit even where the worker's default would do, so no
		// default that reads a file can pick up one from a `make dev`.
		"PAYLOAD_KEYS_FILE=",
		"DATABASE_URL=" + s.DatabaseURL,
		"TOP_GATEWAY_URL=" + s.TopsimURL + "/router/rest",
		"TOP_APP_KEY=" + s.appKey,
		"TOP_APP_SECRET=" + s.appSecret,
		"TOP_CALL_TIMEOUT=2s",
		"HTTP_ADDR=" + ingressAddr,
		"INGRESS_TOKENS=" + s.Token,
		"RETRY_INITIAL_INTERVAL=200ms",
		"RETRY_MAX_INTERVAL=1s",
		"LOG_LEVEL=info",
		"SWEEP_INTERVAL=" + workflows.DefaultSweepInterval.String(),
		fmt.Sprintf("TOP_QPS=%d", max(s.opts.TOPQPS, 0)),
	}...)
	if s.opts.Notify {
		env = append(env, s.NotifyEnv()...)
	}
	return env
}

// TemporalEnv is the Temporal connection every process of the stack gets:
// the stack's address and namespace, no temporal.toml (a profile of the
// user's must not redirect the stack), then Options.TemporalEnv.
func (s *Stack) TemporalEnv() []string {
	env := []string{
		temporalconn.EnvAddress + "=" + s.TemporalAddress,
		temporalconn.EnvNamespace + "=default",
		temporalconn.EnvConfigFile + "=" + filepath.Join(s.Dir, "no-temporal.toml"),
		// The stack's processes share a machine (or a LAN) with its
		// server: gzip would only spend CPU on both ends.
		temporalconn.EnvGRPCCompression + "=" + temporalconn.CompressionNone,
	}
	return append(env, s.opts.TemporalEnv...)
}

// ClientOptions are the options of a client of the stack's Temporal
// server, loaded from TemporalEnv as the worker loads them.
func (s *Stack) ClientOptions() (client.Options, error) {
	conn, err := temporalconn.Load(temporalconn.Map(s.TemporalEnv()), temporalconn.Overrides{})
	if err != nil {
		return client.Options{}, fmt.Errorf("devstack: Temporal connection: %w", err)
	}
	conn.Options.Logger = quietLogger()
	return conn.Options, nil
}

// StartWorker starts the worker (same environment, same ingress port as
// before) and waits for its /readyz.
func (s *Stack) StartWorker(ctx context.Context) error {
	if p := s.proc(ProcWorker); p != nil && p.running() {
		return fmt.Errorf("devstack: the worker is already running (pid %d)", p.pid())
	}
	fmt.Fprintf(s.opts.Log, "devstack: starting the worker, ingress on %s\n", s.IngressURL)
	p, err := s.spawn(ProcWorker, s.workerEnv(), filepath.Join(s.binDir, "worker"))
	if err != nil {
		return err
	}
	if err := waitHTTP(ctx, s.IngressURL+"/readyz", p); err != nil {
		return &StartError{Process: ProcWorker, Err: err, Log: s.LogTail(ProcWorker, 30)}
	}
	return nil
}

// StartExtraWorker starts another worker process beside the main one, e.g.
// on its own TASK_QUEUE or with other payload keys: the main worker's
// environment without METRICS_ADDR, its ingress on a free port, then env,
// which wins. Its log is Dir/<name>.log (see LogTail); name must not be
// one of the stack's own processes nor a running extra worker. It returns
// once the worker's /readyz answers, with the ingress's base URL and a stop
// func (SIGTERM, then SIGKILL after a grace period) that is safe to call
// more than once (it reports a worker that had exited by itself); Stop
// stops any extra worker still running.
func (s *Stack) StartExtraWorker(ctx context.Context, name string, env []string) (url string, stop func() error, err error) {
	switch {
	case name == "" || strings.ContainsAny(name, `/\`):
		return "", nil, &OptionsError{Field: "StartExtraWorker name", Problem: fmt.Sprintf("%q is not a plain file name", name)}
	case name == ProcWorker || name == ProcTopsim || name == ProcTemporal:
		return "", nil, &OptionsError{Field: "StartExtraWorker name", Problem: fmt.Sprintf("%q is one of the stack's own processes", name)}
	}
	if p := s.proc(name); p != nil && p.running() {
		return "", nil, fmt.Errorf("devstack: extra worker %s is already running (pid %d)", name, p.pid())
	}
	ports, err := freePorts(1)
	if err != nil {
		return "", nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	full := append(s.baseWorkerEnv(addr), s.opts.WorkerEnv...)
	// Never the main worker's metrics port, which it would fight for.
	full = append(append(full, "METRICS_ADDR="), env...)
	fmt.Fprintf(s.opts.Log, "devstack: starting extra worker %s, ingress on %s\n", name, addr)
	p, err := s.spawn(name, full, filepath.Join(s.binDir, "worker"))
	if err != nil {
		return "", nil, err
	}
	s.mu.Lock()
	s.extra = append(s.extra, name)
	s.mu.Unlock()
	var once sync.Once
	var stopErr error
	stop = func() error {
		once.Do(func() {
			// A worker that died on its own is worth reporting: the
			// caller saw it as up.
			if !p.running() {
				stopErr = fmt.Errorf("devstack: extra worker %s had already exited: %v", name, p.waitErr)
			}
			p.terminate(stopGrace)
			s.mu.Lock()
			s.extra = slices.DeleteFunc(s.extra, func(n string) bool { return n == name })
			s.mu.Unlock()
		})
		return stopErr
	}
	url = "http://" + addr
	if err := waitHTTP(ctx, url+"/readyz", p); err != nil {
		_ = stop()
		return "", nil, &StartError{Process: name, Err: err, Log: s.LogTail(name, 30)}
	}
	return url, stop, nil
}

// KillWorker sends SIGKILL to the worker's process group and waits for it
// to exit: a crash, not a shutdown.
func (s *Stack) KillWorker() error {
	p := s.proc(ProcWorker)
	if p == nil || !p.running() {
		return errors.New("devstack: the worker is not running")
	}
	fmt.Fprintf(s.opts.Log, "devstack: killing the worker (pid %d)\n", p.pid())
	p.kill()
	<-p.done
	return nil
}

// PauseWorker stops the worker's process group with SIGSTOP, so it holds
// its activities without heartbeating or answering (a long GC pause, a
// frozen VM); ResumeWorker lets it go on with SIGCONT.
func (s *Stack) PauseWorker() error { return s.signalWorker(syscall.SIGSTOP, "pausing") }

// ResumeWorker continues a worker PauseWorker stopped.
func (s *Stack) ResumeWorker() error { return s.signalWorker(syscall.SIGCONT, "resuming") }

func (s *Stack) signalWorker(sig syscall.Signal, what string) error {
	p := s.proc(ProcWorker)
	if p == nil || !p.running() {
		return errors.New("devstack: the worker is not running")
	}
	fmt.Fprintf(s.opts.Log, "devstack: %s the worker (pid %d)\n", what, p.pid())
	p.signal(sig)
	return nil
}

// WorkerPID is the running worker's process id, 0 when it is not running.
func (s *Stack) WorkerPID() int {
	if p := s.proc(ProcWorker); p != nil && p.running() {
		return p.pid()
	}
	return 0
}

// raceWarning is how the race detector starts each report.
const raceWarning = "WARNING: DATA RACE"

// RaceReports returns the race detector's reports in the logs of the
// stack's processes (a stack built with Options.Race), "" when there are
// none; each report runs from its warning to the detector's closing line.
func (s *Stack) RaceReports() (string, error) {
	logs, err := filepath.Glob(filepath.Join(s.Dir, "*.log"))
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, path := range logs {
		data, err := os.ReadFile(path)
		if err != nil {
			return "", err
		}
		text := string(data)
		for {
			i := strings.Index(text, raceWarning)
			if i < 0 {
				break
			}
			text = text[i:]
			end := strings.Index(text, "\n==================")
			if end < 0 {
				end = len(text)
			}
			fmt.Fprintf(&b, "----- %s -----\n%s\n", filepath.Base(path), text[:end])
			text = text[end:]
		}
	}
	return b.String(), nil
}

// PIDs are the process ids of the stack's running processes by name
// (ProcTemporal, ProcTopsim, ProcWorker, extra workers by their names).
func (s *Stack) PIDs() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	pids := make(map[string]int, len(s.procs))
	for name, p := range s.procs {
		if p.running() {
			pids[name] = p.pid()
		}
	}
	return pids
}

// TemporalPID is the Temporal dev server's process id, 0 when the stack
// uses an external server or the dev server is not running.
func (s *Stack) TemporalPID() int {
	if p := s.proc(ProcTemporal); p != nil && p.running() {
		return p.pid()
	}
	return 0
}

// StopTemporal stops the dev server (SIGTERM, then waits); its SQLite file
// stays for StartTemporal. It fails with an external server.
func (s *Stack) StopTemporal() error {
	if s.devServer == nil {
		return errors.New("devstack: the Temporal server is external; only a dev server started by the stack can be stopped")
	}
	p := s.proc(ProcTemporal)
	if p == nil || !p.running() {
		return errors.New("devstack: the Temporal dev server is not running")
	}
	fmt.Fprintf(s.opts.Log, "devstack: stopping the Temporal dev server (pid %d)\n", p.pid())
	p.terminate(stopGrace)
	return nil
}

// startDevServer starts the pinned dev server on free ports. The ports are
// free when picked, but another process (a test stack starting beside this
// one) may bind one before the server does, and the server also picks
// ports of its own for its internal services: it then exits while
// starting. Such a start is tried again on other ports, twice at most.
func (s *Stack) startDevServer(ctx context.Context) error {
	dynamicConfig, err := deploy.DynamicConfigValues()
	if err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		ports, err := freePorts(4)
		if err != nil {
			return err
		}
		s.TemporalAddress = fmt.Sprintf("127.0.0.1:%d", ports[0])
		s.TemporalMetricsAddr = fmt.Sprintf("127.0.0.1:%d", ports[3])
		s.devServer = []string{"server", "start-dev",
			"--ip", "127.0.0.1", "--port", fmt.Sprint(ports[0]), "--ui-port", fmt.Sprint(ports[1]),
			"--http-port", fmt.Sprint(ports[2]), "--metrics-port", fmt.Sprint(ports[3]), "--headless",
			"--db-filename", filepath.Join(s.Dir, "temporal.db"),
			"--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=NORMAL",
			"--search-attribute", "BizId=Keyword", "--search-attribute", "PolicyState=Keyword",
			"--search-attribute", "InsuranceType=Keyword", "--search-attribute", "CallbackState=Keyword",
			"--log-level", "error"}
		// The cluster's dynamic config (deploy/temporal-dynamicconfig.yaml
		// has the reasons): eager activities, the transfer queue's poll
		// rate. Without them tests, bench and chaos would run another
		// system than the one deployed.
		for _, v := range dynamicConfig {
			s.devServer = append(s.devServer, "--dynamic-config-value", v)
		}
		err = s.StartTemporal(ctx)
		p := s.proc(ProcTemporal)
		if err == nil || attempt == 3 || ctx.Err() != nil || p == nil || p.running() {
			return err
		}
		fmt.Fprintf(s.opts.Log, "devstack: the Temporal dev server exited while starting (attempt %d); starting it again on other ports\n", attempt)
		s.mu.Lock()
		delete(s.procs, ProcTemporal) // a first start again: all ports new
		s.mu.Unlock()
	}
}

// StartTemporal starts the dev server on the same ports with the same
// SQLite file and waits until it answers health checks.
func (s *Stack) StartTemporal(ctx context.Context) error {
	if s.devServer == nil {
		return errors.New("devstack: the Temporal server is external; the stack cannot start it")
	}
	if p := s.proc(ProcTemporal); p != nil && p.running() {
		return fmt.Errorf("devstack: the Temporal dev server is already running (pid %d)", p.pid())
	}
	args := slices.Clone(s.devServer)
	if s.proc(ProcTemporal) != nil {
		// A restart (an outage test, chaos): the gRPC and metrics ports
		// must stay, clients and scrapers know them; the UI and HTTP API
		// ports nobody uses get fresh ones, since another process may have
		// taken the old ones while the server was down (seen in CI: "bind:
		// address already in use" on the HTTP port, and no server).
		ports, err := freePorts(2)
		if err != nil {
			return err
		}
		for i := 0; i+1 < len(args); i++ {
			switch args[i] {
			case "--ui-port":
				args[i+1] = fmt.Sprint(ports[0])
			case "--http-port":
				args[i+1] = fmt.Sprint(ports[1])
			}
		}
	}
	fmt.Fprintf(s.opts.Log, "devstack: starting the Temporal dev server on %s\n", s.TemporalAddress)
	p, err := s.spawn(ProcTemporal, nil, s.opts.TemporalBin, args...)
	if err != nil {
		return err
	}
	if err := s.waitTemporal(ctx, p); err != nil {
		return &StartError{Process: ProcTemporal, Err: err, Log: s.LogTail(ProcTemporal, 30)}
	}
	return nil
}

// waitTemporal polls the frontend's health until it answers, p exits or
// the timeout passes.
func (s *Stack) waitTemporal(ctx context.Context, p *process) error {
	opts, err := s.ClientOptions()
	if err != nil {
		return err
	}
	return waitFor(ctx, readyTimeout, p, func(ctx context.Context) error {
		c, err := client.DialContext(ctx, opts)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.CheckHealth(ctx, nil)
		return err
	})
}

// Stop stops every process (worker, topsim, then Temporal; SIGTERM, then
// SIGKILL after a grace period, each to the whole process group) and closes
// the client. A temporary Dir is removed; a given one is kept with its logs.
func (s *Stack) Stop() error {
	if s.Temporal != nil {
		s.Temporal.Close()
		s.Temporal = nil
	}
	s.mu.Lock()
	names := append(slices.Clone(s.extra), ProcWorker, ProcTopsim, ProcTemporal)
	s.mu.Unlock()
	for _, name := range names {
		if p := s.proc(name); p != nil && p.running() {
			p.terminate(stopGrace)
		}
	}
	if s.ownDir && s.Dir != "" {
		if err := os.RemoveAll(s.Dir); err != nil {
			return fmt.Errorf("devstack: remove %s: %w", s.Dir, err)
		}
	}
	return nil
}

// BinPath is the path of one of the stack's binaries: worker, topsim or
// starter.
func (s *Stack) BinPath(name string) string { return filepath.Join(s.binDir, name) }

// Starter returns the starter CLI configured for this stack's Temporal
// server and database, ready to Run or Output. Like every process of the
// stack it gets an explicit environment (see starterEnv) and runs in the
// stack's directory; a caller may append to cmd.Env, which wins.
func (s *Stack) Starter(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, s.BinPath("starter"), args...)
	cmd.Env = append(inheritedEnv(os.Environ()), s.starterEnv()...)
	cmd.Dir = s.Dir
	return cmd
}

// starterEnv is the starter's configuration: the stack's server and
// database, and the main worker's payload keys — explicitly none when the
// worker has none. Left unset, the starter would encrypt with
// .data/payload-keys whenever a `make dev` had left one, and the worker
// could not read what it sent.
func (s *Stack) starterEnv() []string {
	keys, _ := lastValue(s.workerEnv(), "PAYLOAD_KEYS_FILE")
	env := append(s.TemporalEnv(), "DATABASE_URL="+s.DatabaseURL, "PAYLOAD_KEYS_FILE="+keys)
	if q, ok := lastValue(s.workerEnv(), "TASK_QUEUE"); ok {
		env = append(env, "TASK_QUEUE="+q)
	}
	return env
}

// ownNames are the variables the stack itself sets for one of its
// processes (the worker's include Options.WorkerEnv).
func (s *Stack) ownNames(name string) []string {
	switch name {
	case ProcWorker:
		return envNames(s.workerEnv())
	case ProcTopsim:
		return envNames(s.topsimEnv())
	}
	return nil
}

// topsimEnv is topsim's configuration beside its flags: the credentials,
// and the secret its notification receiver verifies with.
func (s *Stack) topsimEnv() []string {
	return []string{"TOP_APP_KEY=" + s.appKey, "TOP_APP_SECRET=" + s.appSecret, "NOTIFY_SECRET=" + DefaultNotifySecret}
}

// NotificationsURL is topsim's notification receiver; its receipts are at
// TopsimURL + "/_sim/notifications".
func (s *Stack) NotificationsURL() string { return s.TopsimURL + "/notifications" }

// NotifyEnv is what makes a worker notify topsim's receiver.
func (s *Stack) NotifyEnv() []string {
	return []string{"NOTIFY_URL=" + s.NotificationsURL(), "NOTIFY_SECRET=" + DefaultNotifySecret}
}

// ReceiptsPath is topsim's receipt log: one JSON Receipt per line, appended
// as each callback is accepted, in arrival order. Reading it costs topsim
// nothing, unlike polling Callbacks.
func (s *Stack) ReceiptsPath() string { return filepath.Join(s.Dir, "receipts.jsonl") }

// LogTail is the last n lines of a process's log (temporal, topsim or
// worker); the log spans restarts.
func (s *Stack) LogTail(name string, n int) string {
	b, err := os.ReadFile(filepath.Join(s.Dir, name+".log"))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (s *Stack) proc(name string) *process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.procs[name]
}

// spawn starts one process in its own process group, its output appended
// to Dir/<name>.log.
func (s *Stack) spawn(name string, env []string, bin string, args ...string) (*process, error) {
	logf, err := os.OpenFile(filepath.Join(s.Dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("devstack: %s log: %w", name, err)
	}
	// The child holds its own descriptor; ours is not needed after Start.
	defer logf.Close()
	fmt.Fprintf(logf, "=== devstack: %s starting at %s ===\n", name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(bin, args...)
	// An explicit environment and the stack's own directory: nothing the
	// caller exports and no file in the caller's directory (a .data/ left
	// by `make dev`) changes what the process does.
	cmd.Env = append(inheritedEnv(os.Environ()), env...)
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, &StartError{Process: name, Err: err}
	}
	p := &process{name: name, cmd: cmd, pidv: cmd.Process.Pid, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	s.mu.Lock()
	s.procs[name] = p
	s.mu.Unlock()
	return p, nil
}

func firstNonEmpty(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

// freePorts reserves n distinct free ports by holding their listeners
// open together, then releases them for the processes to bind.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("devstack: free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// quietLogger keeps the SDK's client logs out of the caller's output.
func quietLogger() tlog.Logger {
	return tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
}
