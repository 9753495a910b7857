// Command topsim runs a strict simulator of the Taobao Open Platform gateway
// for taobao.auction.insurance.insuranceresultcallback: the dev stack's,
// integration tests' and chaos suite's stand-in for Taobao. All behaviour
// lives in package simulator; this file reads the configuration, serves
// HTTP and shuts down cleanly on SIGINT or SIGTERM.
//
// Every flag falls back to an environment variable: TOP_APP_KEY,
// TOP_APP_SECRET, TOP_APP_SECRET_FILE for the credentials, TOPSIM_<FLAG>
// (upper case, dashes as underscores) for the rest, e.g. TOPSIM_ADDR,
// TOPSIM_LATENCY. A flag on the command line beats its variable.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/insuranceflow/insuranceflow/top"
	"github.com/insuranceflow/insuranceflow/topsim/receiver"
	"github.com/insuranceflow/insuranceflow/topsim/simulator"
	"github.com/insuranceflow/insuranceflow/webhook"
)

// DefaultAddr is where topsim listens unless told otherwise; the dev stack's
// worker points its TOP gateway URL here.
const DefaultAddr = "127.0.0.1:8788"

// shutdownGrace bounds how long a shutdown waits for answers in flight.
const shutdownGrace = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	code := 0
	var uerr *usageError
	switch {
	case errors.Is(err, flag.ErrHelp):
	case errors.As(err, &uerr):
		fmt.Fprintln(os.Stderr, "topsim:", err)
		code = 2
	case err != nil:
		fmt.Fprintln(os.Stderr, "topsim:", err)
		code = 1
	}
	os.Exit(code)
}

// usageError is a configuration the user must fix; topsim exits 2 on it.
type usageError struct {
	err error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// config is everything topsim reads from its flags and environment.
type config struct {
	addr     string
	receipts string // JSONL path, "" for none
	sim      simulator.Config
	// notifySecret, when set, turns on the notification receiver
	// (/notifications), which verifies signatures with it.
	notifySecret webhook.Secret
}

// parseConfig reads args, falling back to getenv for every flag not given.
// Usage and flag errors go to stderr; the returned error says what is wrong
// and never contains the secret.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var (
		cfg        config
		secret     string
		secretFile string
		notifySec  string
		notifyFile string
		seed       int64
		faults     simulator.Faults
	)
	fs := flag.NewFlagSet("topsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.sim.AppKey, "app-key", "", "the one app key the gateway knows (env TOP_APP_KEY)")
	fs.StringVar(&secret, "app-secret", "", "that app's secret (env TOP_APP_SECRET; prefer the file or the env: a flag shows in ps)")
	fs.StringVar(&secretFile, "app-secret-file", "", "file holding the app secret (env TOP_APP_SECRET_FILE)")
	fs.StringVar(&notifySec, "notify-secret", "", "whsec_ secret to verify notifications at /notifications with; turns the receiver on (env NOTIFY_SECRET)")
	fs.StringVar(&notifyFile, "notify-secret-file", "", "file holding that secret (env NOTIFY_SECRET_FILE)")
	fs.StringVar(&cfg.addr, "addr", DefaultAddr, "listen address; port 0 picks a free port (env TOPSIM_ADDR)")
	fs.StringVar(&cfg.receipts, "receipts", "", "append accepted callbacks as JSON lines to this file (env TOPSIM_RECEIPTS)")
	fs.Int64Var(&seed, "seed", 0, "seed for fault injection and request ids; the same seed repeats a run (env TOPSIM_SEED)")
	fs.DurationVar(&cfg.sim.MaxSkew, "max-skew", simulator.DefaultMaxSkew, "tolerated timestamp error (env TOPSIM_MAX_SKEW)")
	fs.Float64Var(&faults.ISPErrorRate, "isp-error-rate", 0, "fraction answered with code 15 isp.* (env TOPSIM_ISP_ERROR_RATE)")
	fs.DurationVar(&faults.Latency, "latency", 0, "added to every request (env TOPSIM_LATENCY)")
	fs.Float64Var(&faults.HangRate, "hang-rate", 0, "fraction that hang (env TOPSIM_HANG_RATE)")
	fs.DurationVar(&faults.HangDuration, "hang-duration", simulator.DefaultHangDuration, "how long a hang lasts (env TOPSIM_HANG_DURATION)")
	fs.IntVar(&faults.BanSeconds, "ban-seconds", 0, "start with a ban (code 7) this many seconds long (env TOPSIM_BAN_SECONDS)")
	fs.IntVar(&faults.QPSLimit, "qps-limit", 0, "flow control: more than this many calls in any sliding second are answered code 7 and start a ban; 0 = no limit (env TOPSIM_QPS_LIMIT)")
	fs.IntVar(&faults.QPSBanSeconds, "qps-ban-seconds", simulator.DefaultQPSBanSeconds, "how long the ban lasts that going over -qps-limit starts (env TOPSIM_QPS_BAN_SECONDS)")
	fs.Float64Var(&faults.HTTP502Rate, "http502-rate", 0, "fraction answered with HTTP 502 (env TOPSIM_HTTP502_RATE)")
	fs.StringVar(&faults.RejectBizIDPattern, "reject-pattern", "", "regexp; matching biz_ids get call_success=false (env TOPSIM_REJECT_PATTERN)")
	fs.StringVar(&faults.RejectFailCode, "reject-fail-code", simulator.DefaultRejectFailCode, "fail_code for rejected biz_ids (env TOPSIM_REJECT_FAIL_CODE)")
	fs.StringVar(&faults.RejectFailMessage, "reject-fail-message", simulator.DefaultRejectFailMessage, "fail_message for rejected biz_ids (env TOPSIM_REJECT_FAIL_MESSAGE)")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return config{}, err
		}
		return config{}, &usageError{err}
	}
	if fs.NArg() > 0 {
		return config{}, &usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	if err := applyEnv(fs, getenv); err != nil {
		return config{}, &usageError{err}
	}

	switch {
	case secret != "" && secretFile != "":
		return config{}, &usageError{errors.New("both an app secret and an app secret file are set; give one")}
	case secretFile != "":
		b, err := os.ReadFile(secretFile)
		if err != nil {
			return config{}, &usageError{fmt.Errorf("read app secret file: %w", err)}
		}
		// Editors and `echo` leave a trailing newline that is not part of
		// the secret.
		secret = strings.TrimRight(string(b), "\r\n")
		if secret == "" {
			return config{}, &usageError{fmt.Errorf("app secret file %s is empty", secretFile)}
		}
	}
	var missing []string
	if cfg.sim.AppKey == "" {
		missing = append(missing, "an app key (-app-key or TOP_APP_KEY)")
	}
	if secret == "" {
		missing = append(missing, "an app secret (-app-secret-file, TOP_APP_SECRET_FILE, TOP_APP_SECRET or -app-secret)")
	}
	if len(missing) > 0 {
		return config{}, &usageError{fmt.Errorf("missing %s", strings.Join(missing, " and "))}
	}
	if notifySec != "" || notifyFile != "" {
		ns, _, err := webhook.ReadSecret("NOTIFY_SECRET", notifySec, "NOTIFY_SECRET_FILE", notifyFile)
		if err != nil {
			return config{}, &usageError{err}
		}
		cfg.notifySecret = ns
	}
	cfg.sim.AppSecret = top.Secret(secret)
	cfg.sim.Seed = seed
	cfg.sim.Faults = faults
	return cfg, nil
}

// envName is the variable a flag falls back to.
func envName(flagName string) string {
	switch flagName {
	case "app-key", "app-secret", "app-secret-file":
		return "TOP_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
	case "notify-secret", "notify-secret-file":
		// The worker's own names, so one environment configures both.
		return strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
	}
	return "TOPSIM_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyEnv sets every flag that was not on the command line from its
// variable, if that is set.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		v := getenv(name)
		if given[f.Name] || v == "" {
			return
		}
		if err := f.Value.Set(v); err != nil {
			if f.Name == "app-secret" || f.Name == "notify-secret" { // cannot fail for a string, but never echo it
				errs = append(errs, fmt.Errorf("%s: invalid value", name))
				return
			}
			errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
		}
	})
	return errors.Join(errs...)
}

// run serves until ctx ends, then shuts down gracefully. It prints the
// listening URL on stdout (one line) once the port is open.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	cfg.sim.Logger = logger

	if cfg.receipts != "" {
		f, err := os.OpenFile(cfg.receipts, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("open receipts file: %w", err)
		}
		defer f.Close()
		cfg.sim.Receipts = f
	}
	sim, err := simulator.New(cfg.sim)
	if err != nil {
		return &usageError{err}
	}

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.addr, err)
	}
	// Request contexts derive from baseCtx; cancelling it at shutdown ends
	// injected hangs and latency at once instead of holding the shutdown
	// for up to a hang's 40 s.
	baseCtx, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	handler := sim.Handler()
	if !cfg.notifySecret.IsZero() {
		mux := http.NewServeMux()
		notifications := receiver.New(cfg.notifySecret, nil).Handler()
		mux.Handle("/notifications", notifications)
		mux.Handle("/_sim/notifications", notifications)
		mux.Handle("/_sim/notifications/", notifications)
		mux.Handle("/", handler)
		handler = mux
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	addr := ln.Addr().String()
	logger.Info("topsim listening", slog.String("addr", addr), slog.String("app_key", cfg.sim.AppKey),
		slog.Int64("seed", cfg.sim.Seed), slog.Any("faults", cfg.sim.Faults))
	fmt.Fprintf(stdout, "topsim listening on http://%s/router/rest\n", addr)
	if !cfg.notifySecret.IsZero() {
		fmt.Fprintf(stdout, "topsim receiving notifications on http://%s/notifications (received: GET /_sim/notifications)\n", addr)
	}

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("topsim shutting down")
	cancelBase()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
