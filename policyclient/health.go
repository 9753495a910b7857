package policyclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// ErrTemporalDown is returned, without calling Temporal, while Health knows
// it is down. It wraps ErrUnavailable, so callers answer it as any outage.
var ErrTemporalDown = fmt.Errorf("%w: it failed its last health check; no call is made until a check succeeds", ErrUnavailable)

// Default probe timing of Health.
const (
	DefaultHealthInterval     = time.Second
	DefaultHealthProbeTimeout = 2 * time.Second
	// DefaultHealthFailures is how many probes in a row must fail before
	// Temporal counts as down: one slow health check on a loaded host must
	// not shut every caller out.
	DefaultHealthFailures = 2
)

// Health remembers whether Temporal answers, so that while it does not a
// caller is answered at once (ErrTemporalDown) instead of each request
// waiting out its own timeout while the SDK retries a dead connection.
//
// It learns from a cheap probe (the frontend's gRPC health check), run
// every Interval and at once when a call fails as if Temporal were down
// (Observe). Only a probe decides: a call that timed out because no worker
// answered, with Temporal up, must not shut every caller out, and the probe
// tells the two apart. Temporal counts as up until Failures probes in a
// row fail, and as down from then until a probe succeeds.
type Health struct {
	check    func(context.Context) error
	interval time.Duration
	timeout  time.Duration
	failures int
	logger   *slog.Logger
	kick     chan struct{}

	mu     sync.Mutex
	failed int // probes failed in a row
	down   bool
}

// HealthConfig configures NewHealth.
type HealthConfig struct {
	// Check is the probe, e.g. client.Client.CheckHealth; required.
	Check func(context.Context) error
	// Interval between probes; DefaultHealthInterval when zero.
	Interval time.Duration
	// ProbeTimeout bounds one probe; DefaultHealthProbeTimeout when zero.
	ProbeTimeout time.Duration
	// Failures is how many probes in a row must fail before Temporal
	// counts as down; DefaultHealthFailures when zero.
	Failures int
	// Logger receives one line per change (down, up again); nil = discard.
	Logger *slog.Logger
}

// NewHealth returns a Health that probes once Run is called.
func NewHealth(cfg HealthConfig) (*Health, error) {
	if cfg.Check == nil {
		return nil, errors.New("policyclient: HealthConfig.Check is required")
	}
	h := &Health{
		check:    cfg.Check,
		interval: cfg.Interval,
		timeout:  cfg.ProbeTimeout,
		failures: cfg.Failures,
		logger:   cfg.Logger,
		kick:     make(chan struct{}, 1),
	}
	if h.interval <= 0 {
		h.interval = DefaultHealthInterval
	}
	if h.timeout <= 0 {
		h.timeout = DefaultHealthProbeTimeout
	}
	if h.failures <= 0 {
		h.failures = DefaultHealthFailures
	}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	return h, nil
}

// Err is ErrTemporalDown while the last probe failed, else nil. It never
// blocks.
func (h *Health) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down {
		return ErrTemporalDown
	}
	return nil
}

// Observe is told the outcome of every call to Temporal. A failure that
// looks like an outage (ErrUnavailable, a deadline) asks for a probe now,
// rather than at the next tick, so the next caller already knows.
func (h *Health) Observe(err error) {
	if err == nil || errors.Is(err, ErrTemporalDown) {
		return
	}
	if errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		select {
		case h.kick <- struct{}{}:
		default: // a probe is already asked for
		}
	}
}

// Run probes until ctx ends; it returns nil then.
func (h *Health) Run(ctx context.Context) error {
	ticker := time.NewTicker(h.interval)
	defer ticker.Stop()
	for {
		h.probe(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		case <-h.kick:
		}
	}
}

// probe runs the check once and records the outcome.
func (h *Health) probe(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, h.timeout)
	err := h.check(pctx)
	cancel()
	if ctx.Err() != nil {
		return // shutting down: the outcome says nothing about Temporal
	}
	h.mu.Lock()
	was := h.down
	if err == nil {
		h.failed, h.down = 0, false
	} else {
		h.failed++
		h.down = h.failed >= h.failures
	}
	now := h.down
	h.mu.Unlock()
	switch {
	case now && !was:
		h.logger.Warn("temporal is down: answering calls unavailable until a health check succeeds", "error", err)
	case !now && was:
		h.logger.Info("temporal answers again")
	}
}
