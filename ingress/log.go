package ingress

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// requestNote is what a handler tells the access log about its request.
type requestNote struct {
	bizID  string
	caller string
}

type noteKey struct{}

// noteBizID records the policy a request concerns, for the access log. It
// is called only with a biz_id that passed validation: biz_ids are business
// numbers, never personal data.
func noteBizID(ctx context.Context, bizID string) {
	if n, ok := ctx.Value(noteKey{}).(*requestNote); ok {
		n.bizID = bizID
	}
}

// noteCaller records the authenticated caller's name for the access log.
func noteCaller(ctx context.Context, name string) {
	if n, ok := ctx.Value(noteKey{}).(*requestNote); ok {
		n.caller = name
	}
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logged writes one access-log line per request: method, route pattern,
// status, duration and the biz_id when known. The pattern, not the path,
// is logged, so the line has the same shape for every policy; the body and
// the headers (the token) never are.
func (s *Server) logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		note := &requestNote{}
		r = r.WithContext(context.WithValue(r.Context(), noteKey{}, note))
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)

		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		attrs := []slog.Attr{
			slog.String("method", r.Method),
			slog.String("route", r.Pattern),
			slog.Int("status", status),
			slog.Duration("duration", time.Since(start)),
		}
		if note.bizID != "" {
			attrs = append(attrs, slog.String("biz_id", note.bizID))
		}
		if note.caller != "" {
			attrs = append(attrs, slog.String("caller", note.caller))
		}
		level := slog.LevelInfo
		if status >= http.StatusInternalServerError {
			level = slog.LevelWarn
		}
		s.logger.LogAttrs(r.Context(), level, "http request", attrs...)
	})
}
