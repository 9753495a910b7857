package tracing

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/workflow"
)

// HeaderKey is the Temporal header field every SDK's tracing interceptor
// writes (the OpenTelemetry contrib's default). It is not encrypted by the
// payload codec: it holds only the W3C trace context (baggage is not
// propagated into Temporal, so nothing a caller sends rides along).
const HeaderKey = "_tracer-data"

// spanContextKey is where the tracing interceptor keeps the current span
// in workflow and activity contexts. It is ours, not the contrib's
// default, so that a workflow can name the span an activity's spans
// descend from (WithEventTrace).
type spanContextKey struct{}

// Interceptor is the Temporal SDK's tracing interceptor for clients and
// workers: client calls (Update, Update-with-Start, Query…) write their
// span to the Temporal header, and workflows, update handlers and
// activities continue it. Its workflow spans are made only when not
// replaying, so it adds no commands and changes no history.
func (t *Tracing) Interceptor() (interceptor.Interceptor, error) {
	inner, err := opentelemetry.NewTracer(opentelemetry.TracerOptions{
		Tracer:            t.provider.Tracer("temporal"),
		TextMapPropagator: t.propagator,
		SpanContextKey:    spanContextKey{},
		// Queries come from the UI and status pages, many per event; their
		// spans would only bury the event's.
		DisableQueryTracing: true,
		// A caller's baggage is arbitrary data; it must not reach Temporal
		// history, where the header is not encrypted (see HeaderKey).
		DisableBaggage: true,
	})
	if err != nil {
		return nil, err
	}
	return interceptor.NewTracingInterceptor(eventTracer{Tracer: inner, propagator: t.propagator}), nil
}

// eventParent is the span an activity run for one event descends from:
// the span of the client call that reported the event, as its Update
// header carried it. The workflow keeps it with the event (HeaderTrace)
// and names it for the event's delivery (WithEventTrace), so the delivery,
// its retries and the TOP call join the trace of the request that reported
// the event, not of whichever request started the workflow run.
type eventParent struct {
	traceparent string
	sc          trace.SpanContext
}

// Finish makes eventParent an interceptor.TracerSpan, which is what the
// interceptor looks for in a workflow context. It is a remote span: there
// is nothing to finish.
func (eventParent) Finish(*interceptor.TracerFinishSpanOptions) {}

func (p eventParent) SpanContext() trace.SpanContext { return p.sc }

// eventTracer is the contrib's tracer, taught eventParent.
type eventTracer struct {
	interceptor.Tracer
	propagator propagation.TextMapPropagator
}

func (t eventTracer) StartSpan(opts *interceptor.TracerStartSpanOptions) (interceptor.TracerSpan, error) {
	if p, ok := opts.Parent.(eventParent); ok {
		ref, err := t.UnmarshalSpan(map[string]string{"traceparent": p.traceparent})
		if err != nil {
			ref = nil
		}
		opts.Parent = ref
	}
	return t.Tracer.StartSpan(opts)
}

// GetLogger gives workflow and activity loggers the span's ids under the
// names insuranceflow's own log lines use (trace_id, span_id).
func (t eventTracer) GetLogger(logger log.Logger, ref interceptor.TracerSpanRef) log.Logger {
	s, ok := ref.(interface{ SpanContext() trace.SpanContext })
	if !ok || !s.SpanContext().IsValid() {
		return logger
	}
	sc := s.SpanContext()
	return log.With(logger, "trace_id", sc.TraceID().String(), "span_id", sc.SpanID().String())
}

// HeaderTrace returns the traceparent the caller of the current workflow
// start or Update put in its Temporal header, "" when it sent none. It
// reads the header, which is in the history, so it is deterministic.
func HeaderTrace(ctx workflow.Context) string {
	p, ok := interceptor.WorkflowHeader(ctx)[HeaderKey]
	if !ok || p == nil {
		return ""
	}
	var m map[string]string
	if err := converter.GetDefaultDataConverter().FromPayload(p, &m); err != nil {
		return ""
	}
	if !parse(m["traceparent"]).IsValid() {
		return ""
	}
	return m["traceparent"]
}

// WithEventTrace makes the activities scheduled with ctx descend from the
// event's traceparent (from HeaderTrace). An empty or invalid one leaves
// ctx as it is.
func WithEventTrace(ctx workflow.Context, traceparent string) workflow.Context {
	sc := parse(traceparent)
	if !sc.IsValid() {
		return ctx
	}
	return workflow.WithValue(ctx, spanContextKey{}, eventParent{traceparent: traceparent, sc: sc})
}

func parse(traceparent string) trace.SpanContext {
	if traceparent == "" {
		return trace.SpanContext{}
	}
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": traceparent})
	return trace.SpanContextFromContext(ctx)
}
