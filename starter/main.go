// Command starter is the operator's and developer's CLI of insuranceflow. It
// owns the command line only: reporting an insurance-result event to its
// policy workflow, showing and listing policies, retrying or skipping a
// parked callback, reading a policy's audit trail from the database, and
// simulating traffic against a running stack. The policy operations
// themselves belong to policyclient and the audit trail to store; this
// package parses, connects lazily, prints and picks the exit code.
//
//	go run ./starter --help
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/insuranceflow/insuranceflow/codec"
	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/store"
	"github.com/insuranceflow/insuranceflow/workflows"
)

func main() {
	os.Exit(int(run()))
}

// run wires the real dependencies and runs the CLI once.
func run() exitCode {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Warnings only: the SDK's info lines would drown the command's output.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return execute(ctx, deps{
		stdin:    os.Stdin,
		stdout:   os.Stdout,
		stderr:   os.Stderr,
		getenv:   os.Getenv,
		now:      time.Now,
		progress: isTerminal(os.Stderr),
		backends: &liveBackends{logger: logger, keysFile: payloadKeysFile(os.LookupEnv)},
	}, os.Args[1:])
}

// isTerminal reports whether f is a character device, which is what a
// progress bar needs: redrawn lines are noise in a file or a pipe.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// liveBackends dials Temporal and opens the store on first use. The store
// serves history directly and, behind policyclient, the snapshots that
// report and status need for closed policies. simulate reports from many
// goroutines, so the store is opened under a lock.
type liveBackends struct {
	logger *slog.Logger
	// keysFile is PAYLOAD_KEYS_FILE: with it, payloads are encrypted as
	// the worker encrypts them, or neither could read the other's.
	keysFile string

	mu       sync.Mutex
	temporal client.Client
	policies *policyclient.Client
	store    *store.Store
}

var _ backends = (*liveBackends)(nil)

func (b *liveBackends) Policies(ctx context.Context, cfg config) (policyOps, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.policies != nil {
		return b.policies, nil
	}
	if cfg.conn == nil {
		return nil, errors.New("temporal connection not loaded")
	}
	// Address, namespace, TLS and API key as the Temporal CLI would
	// connect; the logger and payload encryption are ours.
	opts := cfg.conn.Options
	opts.Logger = tlog.NewStructuredLogger(b.logger)
	if cfg.conn.CodecEndpoint != "" {
		// A remote codec (--codec-endpoint): envconfig made the data
		// converter; failures are encrypted through it as the worker
		// encrypts them with its keys.
		opts.FailureConverter = temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
			DataConverter: opts.DataConverter, EncodeCommonAttributes: true,
		})
	} else {
		dc, fc, err := b.converters()
		if err != nil {
			return nil, err
		}
		opts.DataConverter, opts.FailureConverter = dc, fc
	}
	tc, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, &unavailableError{Backend: "temporal", Target: cfg.Address, Err: err}
	}
	b.temporal = tc
	b.policies = &policyclient.Client{
		Temporal:  tc,
		Snapshots: lazySnapshots{backends: b, databaseURL: cfg.DatabaseURL, timeout: cfg.Timeout},
		Policies:  lazyPolicies{backends: b, databaseURL: cfg.DatabaseURL, timeout: cfg.Timeout},
		TaskQueue: cfg.TaskQueue,
		Settings:  cfg.Settings,
		// Now is left to the client (time.Now): this host's clock.
		MaxFutureSkew: cfg.MaxFutureSkew,

		DataConverter: opts.DataConverter,
	}
	return b.policies, nil
}

// devKeysFile is where `make dev` keeps its generated payload key.
const devKeysFile = ".data/payload-keys"

// payloadKeysFile is PAYLOAD_KEYS_FILE; unset, it is the dev stack's key file
// when that exists (as DATABASE_URL defaults to the dev stack's database), so
// the CLI reads what `make dev` encrypts. Set to "", encryption is off.
func payloadKeysFile(lookup func(string) (string, bool)) string {
	if v, ok := lookup("PAYLOAD_KEYS_FILE"); ok {
		return v
	}
	if _, err := os.Stat(devKeysFile); err == nil {
		return devKeysFile
	}
	return ""
}

// converters are the payload-encrypting converters when PAYLOAD_KEYS_FILE
// is set, and nil (the SDK's defaults) otherwise.
func (b *liveBackends) converters() (converter.DataConverter, converter.FailureConverter, error) {
	if b.keysFile == "" {
		return nil, nil, nil
	}
	pc, err := codec.LoadKeyFile(b.keysFile)
	if err != nil {
		// codec's errors name the file and line, never key material.
		return nil, nil, &usageError{Err: fmt.Errorf("PAYLOAD_KEYS_FILE: %w", err)}
	}
	return pc.DataConverter(), pc.FailureConverter(), nil
}

func (b *liveBackends) History(ctx context.Context, cfg config) (historyReader, error) {
	return b.openStore(ctx, cfg.DatabaseURL)
}

func (b *liveBackends) openStore(ctx context.Context, databaseURL string) (*store.Store, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.store != nil {
		return b.store, nil
	}
	// store's errors never quote the URL, which may carry a password.
	st, err := store.Open(ctx, databaseURL)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	b.store = st
	return st, nil
}

func (b *liveBackends) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.temporal != nil {
		b.temporal.Close()
	}
	if b.store != nil {
		return b.store.Close()
	}
	return nil
}

// lazySnapshots opens the store only when policyclient first needs a
// snapshot, so commands that never do (list, retry of a running policy)
// work without a database.
type lazySnapshots struct {
	backends    *liveBackends
	databaseURL string
	timeout     time.Duration
}

func (s lazySnapshots) Snapshot(ctx context.Context, bizID string) (*workflows.Snapshot, error) {
	openCtx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	st, err := s.backends.openStore(openCtx, s.databaseURL)
	if err != nil {
		return nil, err
	}
	return policyclient.StoreSnapshots{Store: st}.Snapshot(ctx, bizID)
}

// lazyPolicies opens the store only when a listing first includes closed
// policies (policyclient.ListFilter.IncludeClosed).
type lazyPolicies struct {
	backends    *liveBackends
	databaseURL string
	timeout     time.Duration
}

func (s lazyPolicies) ListPolicies(ctx context.Context, f store.ListFilter) ([]store.Policy, error) {
	openCtx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	st, err := s.backends.openStore(openCtx, s.databaseURL)
	if err != nil {
		return nil, err
	}
	return st.ListPolicies(ctx, f)
}
