package metrics

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
)

// SDKBuckets are the buckets of the Temporal SDK's latency histograms, in
// seconds. OpenTelemetry's default buckets assume milliseconds (0 to
// 10000), which would put every SDK latency in the first few buckets.
func SDKBuckets() []float64 {
	return []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}
}

// SDK is the Temporal SDK's metrics handler (for client.Options.MetricsHandler),
// exporting on a Prometheus registry. Its metric names are the SDK's own,
// e.g. temporal_request_total, temporal_activity_execution_latency_seconds.
type SDK struct {
	// Handler goes into client.Options.MetricsHandler; every worker and
	// client created from that client inherits it.
	Handler  client.MetricsHandler
	provider *sdkmetric.MeterProvider
}

// NewSDKHandler bridges the Temporal SDK's metrics to reg through the SDK's
// OpenTelemetry contrib and OpenTelemetry's Prometheus exporter. An
// instrument the SDK cannot create is logged, not fatal: the contrib's
// default would panic inside the SDK.
func NewSDKHandler(reg prometheus.Registerer, logger *slog.Logger) (*SDK, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	exporter, err := otelprom.New(
		otelprom.WithRegisterer(reg),
		// The scope (always "temporal-sdk-go") and the OpenTelemetry
		// resource would add a label to every series and a target_info
		// series that say nothing a Prometheus job label does not.
		otelprom.WithoutScopeInfo(),
		otelprom.WithoutTargetInfo(),
	)
	if err != nil {
		return nil, &RegisterError{Metric: "temporal_*", Err: err}
	}
	provider := sdkmetric.NewMeterProvider(
		sdkmetric.WithReader(exporter),
		sdkmetric.WithView(sdkmetric.NewView(
			sdkmetric.Instrument{Kind: sdkmetric.InstrumentKindHistogram, Unit: "s"},
			sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: SDKBuckets()}},
		)),
	)
	handler := temporalotel.NewMetricsHandler(temporalotel.MetricsHandlerOptions{
		Meter: provider.Meter("temporal-sdk-go"),
		OnError: func(err error) {
			logger.Warn("temporal SDK metric not recorded", "error", err)
		},
		// The SDK's counters only grow; monotonic counters export as
		// Prometheus counters (with _total), which rate() expects.
		UseMonotonicCounters: true,
	})
	return &SDK{Handler: handler, provider: provider}, nil
}

// Shutdown stops the OpenTelemetry meter provider behind the handler.
func (s *SDK) Shutdown(ctx context.Context) error {
	if err := s.provider.Shutdown(ctx); err != nil {
		return fmt.Errorf("shut down SDK metrics: %w", err)
	}
	return nil
}
