// Command worker runs insuranceflow's service process: the Temporal worker
// that executes the policy workflows and their TOP callback activities, and
// the HTTP ingress through which business systems report events. Either can
// be turned off (--no-ingress, --no-worker) to scale them apart. This
// package owns only the wiring: configuration, connections, startup checks
// and graceful shutdown.
//
//	go run ./worker --help
package main

import (
	"cmp"
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

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"golang.org/x/sync/errgroup"

	"github.com/insuranceflow/insuranceflow/activities"
	"github.com/insuranceflow/insuranceflow/codec"
	"github.com/insuranceflow/insuranceflow/ingress"
	"github.com/insuranceflow/insuranceflow/notify"
	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/store"
	"github.com/insuranceflow/insuranceflow/top"
	"github.com/insuranceflow/insuranceflow/tracing"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // a dependency is missing or failed while running
	exitConfig  = 2 // a flag or environment variable is unusable
)

// shutdownTimeout bounds how long in-flight HTTP requests may take to finish
// once the process is asked to stop.
const shutdownTimeout = 15 * time.Second

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr))
}

// run reads the configuration, serves until SIGINT or SIGTERM and returns
// the exit code.
func run(args []string, getenv func(string) string, stderr io.Writer) int {
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "worker: invalid configuration:\n%v\n", err)
		return exitConfig
	}
	logger := newLogger(cfg, stderr)
	logger.Info("starting", "config", cfg)
	for _, w := range cfg.Warnings {
		logger.Warn(w)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, logger, getenv); err != nil {
		var (
			cerr    *top.ConfigError
			missing *SearchAttributesError
		)
		switch {
		case errors.As(err, &missing):
			// Printed as is, not logged: the commands to copy span lines,
			// which a log handler would escape.
			fmt.Fprintf(stderr, "worker: %v\n", err)
		default:
			logger.Error("worker stopped", "error", err)
		}
		if errors.As(err, &cerr) {
			return exitConfig
		}
		return exitFailure
	}
	logger.Info("stopped")
	return exitOK
}

func newLogger(cfg config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	// Lines logged while handling an event carry its trace_id.
	return slog.New(tracing.LogHandler(h))
}

// serve connects to Temporal and the database, checks the namespace, and
// runs the worker and the ingress until ctx ends or one of them fails.
// getenv is read for OpenTelemetry's standard variables (OTEL_*).
func serve(ctx context.Context, cfg config, logger *slog.Logger, getenv func(string) string) error {
	obs, err := newObservability(cfg, logger)
	if err != nil {
		return err
	}
	defer obs.close(logger)
	tr, err := tracing.Setup(ctx, "insuranceflow", getenv)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tr.Shutdown(sctx); err != nil {
			logger.Warn("flush traces", "error", err)
		}
	}()
	logger.Info("tracing", "propagation", "w3c", "exporter", cmp.Or(tr.Exporting(), "none"))
	tracer, err := tr.Interceptor()
	if err != nil {
		return err
	}
	// The connection (address, namespace, TLS, API key) comes from the
	// SDK's environment configuration; what is ours is added on top.
	opts := cfg.Temporal.Options
	opts.Logger = tlog.NewStructuredLogger(logger.With("component", "temporal"))
	// The worker and the clients made from this one inherit it.
	opts.MetricsHandler = obs.sdkHandler()
	// One client serves the worker and the ingress, so both encrypt. A
	// remote codec endpoint in the profile is for people's CLIs: the
	// worker encrypts with its own keys or not at all.
	opts.DataConverter = cfg.dataConverter()
	opts.FailureConverter = cfg.failureConverter()
	// Update calls carry their span in the Temporal header; the worker
	// made from this client continues it in workflows and activities.
	opts.Interceptors = append(opts.Interceptors, tracer)
	tc, err := client.DialContext(ctx, opts)
	if err != nil {
		return fmt.Errorf("connect to Temporal at %s: %w", cfg.TemporalAddress, err)
	}
	defer tc.Close()
	if err := checkSearchAttributes(ctx, tc.OperatorService(), cfg.TemporalNamespace, cfg.Temporal.Cloud()); err != nil {
		return err
	}
	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer func() {
		if err := st.Close(); err != nil {
			logger.Warn("close database", "error", err)
		}
	}()

	g, gctx := errgroup.WithContext(ctx)
	if cfg.WorkerEnabled {
		w, fatal, err := newWorker(tc, st, cfg, logger, obs, tr)
		if err != nil {
			return err
		}
		g.Go(func() error { return runWorker(gctx, w, fatal, logger) })
		if cfg.SweepInterval > 0 {
			g.Go(func() error {
				keepSweeper(gctx, tc, cfg, logger)
				return nil
			})
		}
	}
	if cfg.IngressEnabled {
		// While Temporal is down the ingress answers 503 at once instead
		// of letting every request wait out its timeout.
		health, err := policyclient.NewHealth(policyclient.HealthConfig{
			Check: func(ctx context.Context) error {
				_, err := tc.CheckHealth(ctx, &client.CheckHealthRequest{})
				return err
			},
			Logger: logger.With("component", "temporal-health"),
		})
		if err != nil {
			return err
		}
		g.Go(func() error { return health.Run(gctx) })
		// The codec's own listener (loopback unless tokens guard it) is
		// bound before the ingress is announced, so whoever waits for
		// "ingress listening" finds every listener accepting.
		if cfg.Codec != nil && !cfg.CodecOnIngress {
			cs, err := newCodecHandler(cfg, logger)
			if err != nil {
				return err
			}
			mux := http.NewServeMux()
			mux.Handle(codec.PathPrefix, cs)
			csrv, cln, err := newHTTPServer(mux, cfg.CodecAddr, logger)
			if err != nil {
				return err
			}
			logger.Info("codec endpoint for the Temporal UI", "url", "http://"+cln.Addr().String()+strings.TrimSuffix(codec.PathPrefix, "/"))
			g.Go(func() error { return runHTTP(gctx, csrv, cln) })
		}
		srv, ln, err := newIngress(tc, st, cfg, logger, obs, health, tr)
		if err != nil {
			return err
		}
		// The real address, so HTTP_ADDR=127.0.0.1:0 can be used.
		logger.Info("ingress listening", "url", "http://"+ln.Addr().String())
		if cfg.Codec != nil && cfg.CodecOnIngress {
			logger.Info("codec endpoint for the Temporal UI", "url", "http://"+ln.Addr().String()+strings.TrimSuffix(codec.PathPrefix, "/"))
		}
		g.Go(func() error { return runHTTP(gctx, srv, ln) })
	} else {
		// Worker only: the same probes on HTTP_ADDR, so an orchestrator
		// restarts a worker that lost Temporal or its database.
		srv, ln, err := newHTTPServer(ingress.Probes(readiness(tc, st), logger.With("component", "probes")), cfg.HTTPAddr, logger)
		if err != nil {
			return err
		}
		logger.Info("probes listening", "url", "http://"+ln.Addr().String()+"/readyz")
		g.Go(func() error { return runHTTP(gctx, srv, ln) })
	}
	if err := obs.start(gctx, g, tc, cfg, logger); err != nil {
		return err
	}
	return g.Wait()
}

// newWorker builds the Temporal worker with the policy workflow and its
// activities. Fatal worker errors (the namespace deleted, say) arrive on the
// returned channel.
func newWorker(tc client.Client, st *store.Store, cfg config, logger *slog.Logger, obs *observability, tr *tracing.Tracing) (worker.Worker, <-chan error, error) {
	caller, err := top.New(top.Config{
		GatewayURL:     cfg.TOPGatewayURL,
		AppKey:         cfg.TOPAppKey,
		AppSecret:      cfg.TOPAppSecret,
		SignMethod:     cfg.TOPSignMethod,
		Session:        cfg.TOPSession,
		CallTimeout:    cfg.TOPCallTimeout,
		ConnectTimeout: cfg.TOPConnectTimeout,
		WrapTransport:  tr.Transport,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("build TOP client: %w", err)
	}
	// Process-wide in the SDK and read when the first worker is created, so
	// it is set here, once, before worker.New. It bounds the worker's memory:
	// with an entity workflow per policy most workflows are idle, and the
	// SDK's default cache would keep up to 10,000 of them in memory, so RSS
	// would grow with the number of open policies. An evicted workflow is
	// replayed from its short history on its next event.
	worker.SetStickyWorkflowCacheSize(cfg.WorkflowCacheSize)
	fatal := make(chan error, 1)
	// TOP_QPS is kept by a limiter in the store every worker shares, not by
	// Temporal's TaskQueueActivitiesPerSecond: that one is a token bucket
	// that lets about twice the rate through in one sliding second, counts
	// activity starts rather than TOP calls, and turns eager activity
	// execution off (see activities/ratelimit.go).
	var limiter *activities.CallLimiter
	if cfg.TOPQPS > 0 {
		limiter, err = activities.NewCallLimiter(activities.LimiterConfig{
			Slots:   st,
			Key:     "top:" + cfg.TOPAppKey, // TOP counts per app
			QPS:     cfg.TOPQPS,
			Margin:  cfg.TOPQPSMargin,
			Metrics: obs.limiterMetrics(),
		})
		if err != nil {
			return nil, nil, err
		}
	}
	callTimeout := cfg.TOPCallTimeout
	if callTimeout == 0 {
		callTimeout = top.DefaultCallTimeout
	}
	w := worker.New(tc, cfg.TaskQueue, workerOptions(cfg, fatal))
	w.RegisterWorkflowWithOptions(workflows.Policy, workflow.RegisterOptions{Name: workflows.WorkflowName})
	w.RegisterWorkflowWithOptions(workflows.Sweeper, workflow.RegisterOptions{Name: workflows.SweeperWorkflowName})
	w.RegisterActivityWithOptions(policyclient.Sweep{Policies: newPolicyClient(tc, st, cfg), Metrics: obs.sweepMetrics()}.ResumeClosed,
		activity.RegisterOptions{Name: workflows.ResumeClosedActivity})
	w.RegisterActivity(&activities.Activities{
		TOP:    caller,
		Store:  st,
		Logger: logger.With("component", "activities"),
		Now:    time.Now,
		Tracer: tr.Tracer(),

		Limiter:        limiter,
		TOPCallTimeout: callTimeout,
		Metrics:        obs.activityMetrics(),

		Notifier:      notifier(cfg),
		NotifyMetrics: obs.notifyMetrics(),

		Turns: activities.NewTurns(),
	})
	// A local activity, run by name (the workflow package cannot import
	// policyclient, which imports it).
	w.RegisterActivityWithOptions(policyclient.SnapshotLoader{
		Snapshots:     policyclient.StoreSnapshots{Store: st},
		Temporal:      tc,
		DataConverter: cfg.dataConverter(),
	}.Load, activity.RegisterOptions{Name: workflows.LoadSnapshotActivity})
	return w, fatal, nil
}

// keepSweeper starts the sweeper, retrying until it succeeds, and then
// looks every sweeperCheckEvery whether it still runs, starting it again if
// someone cancelled or terminated it, until ctx ends. A worker that cannot
// reach Temporal for a moment still polls and delivers, and must not exit
// for want of the sweeper.
func keepSweeper(ctx context.Context, tc client.Client, cfg config, logger *slog.Logger) {
	backoff := time.Second
	started := false
	for ctx.Err() == nil {
		wait := sweeperCheckEvery
		if err := ensureSweeper(ctx, tc, cfg, started); err != nil {
			if ctx.Err() != nil {
				return
			}
			wait, backoff = backoff, min(2*backoff, time.Minute)
			logger.Warn("sweeper not started; retrying", "in", wait, "error", err)
		} else {
			started, backoff = true, time.Second
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
	}
}

// sweeperCheckEvery is how often a worker checks that the sweeper runs.
const sweeperCheckEvery = 10 * time.Minute

// ensureSweeper starts the sweeper (with this worker's interval) the first
// time, and later only when no run of it is open: a running sweeper's
// history gets no signal every check.
func ensureSweeper(ctx context.Context, tc client.Client, cfg config, started bool) error {
	if started {
		d, err := tc.DescribeWorkflowExecution(ctx, workflows.SweeperWorkflowID(cfg.TaskQueue), "")
		if err == nil && d.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			return nil
		}
	}
	return startSweeper(ctx, tc, cfg)
}

// startSweeper makes sure the task queue's sweeper runs, with this
// worker's interval: it starts it when no run is open, and otherwise sends
// the open one the interval (signal-with-start, conflict policy
// USE_EXISTING), so every worker of the queue shares one sweeper and the
// latest deploy's setting holds.
func startSweeper(ctx context.Context, tc client.Client, cfg config) error {
	_, err := tc.SignalWithStartWorkflow(ctx, workflows.SweeperWorkflowID(cfg.TaskQueue),
		workflows.SignalSweepInterval, cfg.SweepInterval,
		client.StartWorkflowOptions{
			TaskQueue:                cfg.TaskQueue,
			WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
			StaticSummary:            "Resumes the policies whose run was cancelled or terminated",
		},
		workflows.SweeperWorkflowName, workflows.SweeperInput{
			TaskQueue: cfg.TaskQueue, Interval: cfg.SweepInterval, FirstLookBack: workflows.DefaultSweepFirstLookBack,
		})
	if err != nil {
		return fmt.Errorf("start the sweeper: %w", err)
	}
	return nil
}

// notifier is the notification sender, or nil (a nil interface) without
// NOTIFY_URL.
func notifier(cfg config) activities.Notifier {
	if cfg.NotifyURL == "" {
		return nil
	}
	return &notify.Sender{URL: cfg.NotifyURL, Secret: cfg.NotifySecret, Client: &http.Client{Timeout: 30 * time.Second}}
}

// workerOptions is how the worker polls and stops; a fatal error goes to
// fatal. It sets no TaskQueueActivitiesPerSecond, whatever TOP_QPS is: the
// SDK turns eager activity execution off under a task-queue rate limit.
func workerOptions(cfg config, fatal chan<- error) worker.Options {
	return worker.Options{
		// A deploy's SIGTERM lets running callbacks finish (the default is
		// 0: they would be cancelled and retried after a heartbeat timeout,
		// possibly after TOP had already taken them).
		WorkerStopTimeout: cfg.WorkerStopTimeout,
		// The SDK's default is two pollers per kind, shared by the sticky
		// and the normal workflow queues. A new policy's first workflow task
		// comes from the normal queue, so under load it waited for one of
		// them: at saturation the first event's accept p50 was 340-1,470 ms
		// against 55-130 ms for later ones. Autoscaling (Temporal's advice
		// for production workers) adds pollers while polls come back full.
		WorkflowTaskPollerBehavior: worker.NewPollerBehaviorAutoscaling(worker.PollerBehaviorAutoscalingOptions{}),
		ActivityTaskPollerBehavior: worker.NewPollerBehaviorAutoscaling(worker.PollerBehaviorAutoscalingOptions{}),
		OnFatalError: func(err error) {
			select {
			case fatal <- err:
			default:
			}
		},
	}
}

// runWorker polls until ctx ends, then stops the worker, which waits for
// running activities up to the worker's stop timeout.
func runWorker(ctx context.Context, w worker.Worker, fatal <-chan error, logger *slog.Logger) error {
	if err := w.Start(); err != nil {
		return fmt.Errorf("start Temporal worker: %w", err)
	}
	logger.Info("worker polling")
	defer w.Stop()
	select {
	case <-ctx.Done():
		return nil
	case err := <-fatal:
		return fmt.Errorf("temporal worker: %w", err)
	}
}

// newPolicyClient is the one policyclient configuration of the process:
// the ingress's, and the sweep activity's (which starts runs with the same
// task queue and settings a report would).
func newPolicyClient(tc client.Client, st *store.Store, cfg config) *policyclient.Client {
	return &policyclient.Client{
		Temporal:  tc,
		Snapshots: policyclient.StoreSnapshots{Store: st},
		Audit:     st,
		Policies:  st,
		TaskQueue: cfg.TaskQueue,
		Settings:  cfg.Settings,
		// This host's clock: the ingress refuses events dated ahead
		// of it (see policyclient.Client.Now), and a sweep sets its
		// watermark by it.
		Now:           time.Now,
		MaxFutureSkew: cfg.MaxFutureSkew,

		DataConverter: cfg.dataConverter(),
	}
}

// newIngress builds the HTTP server and binds its listener, so the caller
// can log the real address before serving.
func newIngress(tc client.Client, st *store.Store, cfg config, logger *slog.Logger, obs *observability, gate ingress.Gate, tr *tracing.Tracing) (*http.Server, net.Listener, error) {
	policies := newPolicyClient(tc, st, cfg)
	api, err := ingress.New(ingress.Config{
		Policies:    policies,
		Imports:     policies,
		Events:      st,
		Clients:     cfg.IngressClients,
		Tokens:      cfg.tokens(),
		Ready:       readiness(tc, st),
		CallTimeout: cfg.TemporalCallTimeout,
		Gate:        gate,
		Logger:      logger.With("component", "ingress"),

		TOPAppKey:    cfg.IngressTOPAppKey,
		TOPAppSecret: cfg.IngressTOPAppSecret,
		Metrics:      obs.ingressMetrics(),
	})
	if err != nil {
		return nil, nil, err
	}
	handler, err := withCodec(api.Handler(), cfg, logger)
	if err != nil {
		return nil, nil, err
	}
	// Outermost, so every answer on this listener carries traceparent.
	handler = tr.Handler(handler)
	srv, ln, err := newHTTPServer(handler, cfg.HTTPAddr, logger)
	if err != nil {
		return nil, nil, err
	}
	// Longer than this ingress's own bound on a Temporal call, whatever
	// TEMPORAL_CALL_TIMEOUT says, so a slow report still gets its 503.
	srv.WriteTimeout = cfg.TemporalCallTimeout + 10*time.Second
	return srv, ln, nil
}

// newHTTPServer binds addr and builds the server for handler.
func newHTTPServer(handler http.Handler, addr string, logger *slog.Logger) (*http.Server, net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// Longer than the ingress's own bound on a Temporal call, so a slow
		// report still gets its 503 rather than a cut connection.
		WriteTimeout: ingress.DefaultCallTimeout + 10*time.Second,
		IdleTimeout:  2 * time.Minute,
		ErrorLog:     slog.NewLogLogger(logger.With("component", "http").Handler(), slog.LevelWarn),
	}, ln, nil
}

// withCodec mounts the payload codec endpoint under /codec/ beside the
// ingress when a key file is configured, so the Temporal UI can show
// decrypted payloads; without one, /codec/ is the ingress's 404 like any
// unknown path.
func withCodec(api http.Handler, cfg config, logger *slog.Logger) (http.Handler, error) {
	if cfg.Codec == nil || !cfg.CodecOnIngress {
		return api, nil
	}
	cs, err := newCodecHandler(cfg, logger)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle(codec.PathPrefix, cs)
	mux.Handle("/", api)
	return mux, nil
}

// newCodecHandler is the codec endpoint (/codec/encode, /codec/decode).
func newCodecHandler(cfg config, logger *slog.Logger) (http.Handler, error) {
	cs, err := codec.NewServer(codec.ServerConfig{
		Codec:          cfg.Codec,
		AllowedOrigins: cfg.CodecCORSOrigins,
		Tokens:         cfg.codecTokens(),
		Logger:         logger.With("component", "codec"),
	})
	if err != nil {
		return nil, err
	}
	return cs.Handler(), nil
}

// runHTTP serves on ln until ctx ends, then lets in-flight requests finish
// (up to shutdownTimeout).
func runHTTP(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve HTTP: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down HTTP server: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve HTTP: %w", err)
	}
	return nil
}

// readiness reports whether Temporal and the database answer.
func readiness(tc client.Client, st *store.Store) func(context.Context) error {
	return func(ctx context.Context) error {
		if _, err := tc.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
			return fmt.Errorf("temporal: %w", err)
		}
		if err := st.Ping(ctx); err != nil {
			return fmt.Errorf("database: %w", err)
		}
		return nil
	}
}
