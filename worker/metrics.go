package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
	"golang.org/x/sync/errgroup"

	"github.com/insuranceflow/insuranceflow/activities"
	"github.com/insuranceflow/insuranceflow/ingress"
	"github.com/insuranceflow/insuranceflow/metrics"
	"github.com/insuranceflow/insuranceflow/policyclient"
)

// observability is the process's Prometheus metrics: the SDK's and the
// project's on one registry, served on METRICS_ADDR. Without METRICS_ADDR
// it is empty and hands out nil everywhere, which every consumer reads as
// "record nothing".
type observability struct {
	registry *prometheus.Registry
	metrics  *metrics.Metrics
	limiter  *metrics.RateLimit
	sdk      *metrics.SDK
}

func newObservability(cfg config, logger *slog.Logger) (*observability, error) {
	if cfg.MetricsAddr == "" {
		return &observability{}, nil
	}
	reg := metrics.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		return nil, err
	}
	limiter, err := metrics.NewRateLimit(reg)
	if err != nil {
		return nil, err
	}
	sdk, err := metrics.NewSDKHandler(reg, logger.With("component", "metrics"))
	if err != nil {
		return nil, err
	}
	return &observability{registry: reg, metrics: m, limiter: limiter, sdk: sdk}, nil
}

// sdkHandler is client.Options.MetricsHandler: nil, the SDK's no-op, when
// metrics are off.
func (o *observability) sdkHandler() client.MetricsHandler {
	if o.sdk == nil {
		return nil
	}
	return o.sdk.Handler
}

// activityMetrics and ingressMetrics are nil interfaces when metrics are
// off, not interfaces holding a nil pointer, so their consumers can skip
// work done only for metrics.
func (o *observability) activityMetrics() activities.Metrics {
	if o.metrics == nil {
		return nil
	}
	return o.metrics
}

func (o *observability) notifyMetrics() activities.NotifyMetrics {
	if o.metrics == nil {
		return nil
	}
	return o.metrics
}

func (o *observability) sweepMetrics() policyclient.SweepMetrics {
	if o.metrics == nil {
		return nil
	}
	return o.metrics
}

func (o *observability) limiterMetrics() activities.LimiterMetrics {
	if o.limiter == nil {
		return nil
	}
	return o.limiter
}

func (o *observability) ingressMetrics() ingress.Metrics {
	if o.metrics == nil {
		return nil
	}
	return o.metrics
}

// start binds METRICS_ADDR and runs, in g until ctx ends, the /metrics
// server and the periodic count of parked callbacks behind the gauge.
func (o *observability) start(ctx context.Context, g *errgroup.Group, tc client.Client, cfg config, logger *slog.Logger) error {
	if o.metrics == nil {
		return nil
	}
	ln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("listen on %s for metrics: %w", cfg.MetricsAddr, err)
	}
	// The real address, so METRICS_ADDR=127.0.0.1:0 can be used.
	logger.Info("metrics listening", "url", "http://"+ln.Addr().String()+metrics.Path)
	srv := &http.Server{
		Handler:           metrics.Handler(o.registry, logger.With("component", "metrics")),
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.With("component", "metrics").Handler(), slog.LevelWarn),
	}
	g.Go(func() error { return runHTTP(ctx, srv, ln) })
	g.Go(func() error {
		return o.metrics.PollParked(ctx, metrics.CountParked(tc), cfg.MetricsParkedInterval, logger.With("component", "metrics"))
	})
	return nil
}

// close flushes and stops the SDK's meter provider.
func (o *observability) close(logger *slog.Logger) {
	if o.sdk == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := o.sdk.Shutdown(ctx); err != nil {
		logger.Warn("stop metrics", "error", err)
	}
}
