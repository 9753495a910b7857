// Package tracing owns OpenTelemetry tracing for insuranceflow: one trace
// per reported event, from the ingress request through the Temporal Update,
// the workflow and the DeliverCallback activity to the TOP HTTP call.
//
// Propagation is always on: W3C trace context is read from callers, written
// to every ingress answer (traceparent) and sent to TOP, and trace ids are
// generated even when nothing exports them, so log lines and answers can be
// correlated. Export is configured the standard OpenTelemetry way
// (OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME, …)
// and is off when none of those is set.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Name is the instrumentation scope of insuranceflow's own spans.
const Name = "github.com/insuranceflow/insuranceflow"

// Tracing is what a process traces with. The zero value is not usable;
// build one with Setup or New.
type Tracing struct {
	provider   trace.TracerProvider
	propagator propagation.TextMapPropagator
	shutdown   func(context.Context) error
	exporting  string // the exporter's name, "" when nothing is exported
}

// Propagator is W3C trace context plus baggage, the propagator every
// component uses (and the one Temporal's SDKs put in workflow headers).
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// New wraps a provider built elsewhere (a test's, with an in-memory
// exporter). Shutdown does not shut it down: its owner does.
func New(provider trace.TracerProvider) *Tracing {
	return &Tracing{provider: provider, propagator: Propagator(), shutdown: func(context.Context) error { return nil }}
}

// exportVars are the variables that turn export on. OTEL_TRACES_EXPORTER
// alone decides which exporter; an OTLP endpoint alone means OTLP.
var exportVars = []string{
	"OTEL_TRACES_EXPORTER",
	"OTEL_EXPORTER_OTLP_ENDPOINT",
	"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
}

// Setup builds the process's tracer provider. It always records spans (so
// trace ids exist for logs and answers) and exports them only when the
// environment asks for it. service names the process when
// OTEL_SERVICE_NAME does not.
func Setup(ctx context.Context, service string, getenv func(string) string) (*Tracing, error) {
	exporting := ""
	for _, v := range exportVars {
		if getenv(v) != "" {
			exporting = "otlp"
		}
	}
	if e := getenv("OTEL_TRACES_EXPORTER"); e != "" {
		exporting = e
	}
	if exporting == "none" {
		exporting = ""
	}
	// The service name default comes first so OTEL_SERVICE_NAME and
	// OTEL_RESOURCE_ATTRIBUTES, read later, override it.
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(service)),
		resource.WithFromEnv(),
		resource.WithTelemetrySDK(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("tracing: resource from OTEL_SERVICE_NAME/OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		// A caller's sampling decision is kept; our own roots are sampled,
		// unless OTEL_TRACES_SAMPLER says otherwise (read by the SDK).
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
	}
	if exporting != "" {
		exp, err := autoexport.NewSpanExporter(ctx)
		if err != nil {
			// The error names the variable's value (an exporter name), never
			// a header: those may hold credentials.
			return nil, fmt.Errorf("tracing: exporter from OTEL_TRACES_EXPORTER/OTEL_EXPORTER_OTLP_*: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	return &Tracing{provider: tp, propagator: Propagator(), shutdown: tp.Shutdown, exporting: exporting}, nil
}

// Exporting names the exporter in use, "" when spans are not exported.
func (t *Tracing) Exporting() string { return t.exporting }

// Tracer is insuranceflow's own tracer (store calls, TOP calls).
func (t *Tracing) Tracer() trace.Tracer { return t.provider.Tracer(Name) }

// Shutdown flushes spans not yet exported.
func (t *Tracing) Shutdown(ctx context.Context) error { return t.shutdown(ctx) }

// Transport wraps an HTTP client's transport so each request is a client
// span and carries traceparent, the way a gateway that logs it expects.
func (t *Tracing) Transport(next http.RoundTripper) http.RoundTripper {
	return otelhttp.NewTransport(next,
		otelhttp.WithTracerProvider(t.provider),
		otelhttp.WithPropagators(t.propagator),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return "HTTP " + r.Method }),
	)
}

// Handler wraps an HTTP server's handler: it continues a caller's trace
// (W3C traceparent) or starts one, and answers with the request span's
// traceparent so a caller can quote it.
func (t *Tracing) Handler(next http.Handler) http.Handler {
	answer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if sc := trace.SpanContextFromContext(r.Context()); sc.IsValid() {
			w.Header().Set("Traceparent", TraceParent(sc))
		}
		next.ServeHTTP(w, r)
	})
	return otelhttp.NewHandler(answer, "ingress",
		otelhttp.WithTracerProvider(t.provider),
		otelhttp.WithPropagators(t.propagator),
		// Named by the route pattern once the mux has matched one (otelhttp
		// asks again after the handler): "POST /v1/insurance-results", never
		// the path, which may hold a biz_id.
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			if r.Pattern != "" {
				return r.Pattern
			}
			return r.Method
		}),
	)
}

// TraceParent formats a span context as a W3C traceparent header value.
func TraceParent(sc trace.SpanContext) string {
	return fmt.Sprintf("00-%s-%s-%s", sc.TraceID(), sc.SpanID(), sc.TraceFlags())
}
