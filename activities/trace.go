package activities

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// span starts a span for one step of a delivery (a store write, the wait
// for a TOP call slot, the TOP call), a child of the attempt's span. Its
// attributes are identifiers only: never the event, its account manager
// or a TOP parameter.
func (a *Activities) span(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, func(error)) {
	t := a.Tracer
	if t == nil {
		t = noop.NewTracerProvider().Tracer("")
	}
	ctx, span := t.Start(ctx, name, trace.WithAttributes(attrs...))
	return ctx, func(err error) {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}
