// Package ingress owns the HTTP API through which business systems report
// insurance results and operators inspect policies and act on parked
// callbacks. It authenticates callers by bearer token, bounds and checks
// request bodies, turns every answer of the policy client into JSON with
// readable names, and gives every error one shape:
//
//	{"error": {"code": "...", "message": "...", ...}}
//
// It logs one access line per request, never a body, a token or personal
// data. The work itself is policyclient's; this package only speaks HTTP.
//
// One endpoint speaks another protocol: POST /router/rest, when configured,
// is a drop-in for a TOP gateway (see toprouter.go). It authenticates by the
// TOP signature instead of a bearer token and answers in TOP's envelopes.
package ingress

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/insuranceflow/insuranceflow/api"
	"github.com/insuranceflow/insuranceflow/auth"
	"github.com/insuranceflow/insuranceflow/importing"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/top"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// Policies is what the API needs from the policy client; the handlers take
// this interface so tests can stand in for Temporal.
type Policies interface {
	Report(ctx context.Context, r insurance.Result) (workflows.Acceptance, error)
	Status(ctx context.Context, bizID string) (workflows.Status, error)
	List(ctx context.Context, f policyclient.ListFilter) (policyclient.ListPage, error)
	Retry(ctx context.Context, bizID string, req workflows.OperatorRequest) (workflows.OperatorResult, error)
	Skip(ctx context.Context, bizID string, req workflows.OperatorRequest) (workflows.OperatorResult, error)
	OperatorActions(ctx context.Context, bizID string) ([]policyclient.OperatorActionView, error)
	LostNotifications(ctx context.Context, bizID string) ([]policyclient.LostNotificationView, error)
}

var _ Policies = (*policyclient.Client)(nil)

// DefaultCallTimeout bounds one call into the policy client
// (TEMPORAL_CALL_TIMEOUT): reporting an event waits for the workflow to
// accept it, which takes milliseconds when Temporal and a worker are up and
// forever when they are not. It is well below the 30 s that HTTP clients
// commonly wait, so a caller gets a 503 it can act on rather than its own
// timeout; with a Gate, a caller gets it at once while Temporal is known to
// be down.
const DefaultCallTimeout = 5 * time.Second

// readyTimeout bounds a readiness check, so a probe gets an answer before
// its own timeout.
const readyTimeout = 3 * time.Second

// retryAfter is the Retry-After a 503 carries, in seconds.
const retryAfter = "5"

// Config configures a Server.
type Config struct {
	Policies Policies
	// Events serves GET /v1/events (the export) from the store; the route
	// exists only when it is set.
	Events policyclient.EventExporter
	// Imports serves POST /v1/imports (the operate scope); the route
	// exists only when it is set.
	Imports importing.Policies
	// Clients are the named callers and their scopes (INGRESS_CLIENTS_FILE).
	Clients *auth.Clients
	// Tokens are development bearer tokens (INGRESS_TOKENS), each a caller
	// with every scope. Clients and Tokens together need at least one
	// caller; no token may be empty.
	Tokens []string
	// Ready reports whether the service's dependencies (Temporal, the
	// database) answer; nil means always ready.
	Ready  func(ctx context.Context) error
	Logger *slog.Logger // slog.Default() when nil
	// CallTimeout bounds each call into Policies; DefaultCallTimeout when zero.
	CallTimeout time.Duration

	// TOPAppKey and TOPAppSecret are the credentials callers of the
	// TOP-compatible endpoint (POST /router/rest) sign their requests with;
	// the endpoint is served only when both are set.
	TOPAppKey    string
	TOPAppSecret top.Secret
	// Now is the clock TOP request timestamps are checked against; nil
	// means time.Now.
	Now func() time.Time
	// Metrics receives the outcome of every reported event; nil records
	// nothing.
	Metrics Metrics
	// Gate, when set, answers every call 503 unavailable at once while it
	// knows the workflow service is down, and is told each call's outcome.
	Gate Gate
}

// ConfigError is returned by New when the configuration is unusable.
type ConfigError struct {
	Field   string
	Problem string
}

func (e *ConfigError) Error() string { return fmt.Sprintf("ingress config %s: %s", e.Field, e.Problem) }

// Server is the HTTP API. Create it with New; it is safe for concurrent use.
type Server struct {
	policies    Policies
	callers     *auth.Clients
	ready       func(ctx context.Context) error
	logger      *slog.Logger
	callTimeout time.Duration
	router      *topRouter // nil when the TOP-compatible endpoint is off
	metrics     Metrics
	export      policyclient.EventExporter // nil: no GET /v1/events
	importer    importing.Policies         // nil: no POST /v1/imports
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Policies == nil {
		return nil, &ConfigError{Field: "Policies", Problem: "is required"}
	}
	if len(cfg.Tokens) == 0 && (cfg.Clients == nil || cfg.Clients.Len() == 0) {
		return nil, &ConfigError{Field: "Tokens", Problem: "at least one caller (Clients) or bearer token is required"}
	}
	for i, t := range cfg.Tokens {
		if strings.TrimSpace(t) == "" {
			// The position, never the value: the others are secrets.
			return nil, &ConfigError{Field: "Tokens", Problem: fmt.Sprintf("token %d is empty", i+1)}
		}
	}
	if cfg.CallTimeout < 0 {
		return nil, &ConfigError{Field: "CallTimeout", Problem: fmt.Sprintf("%v is negative", cfg.CallTimeout)}
	}
	router, err := newTOPRouter(cfg)
	if err != nil {
		return nil, err
	}
	policies := cfg.Policies
	if cfg.Gate != nil {
		policies = gatedPolicies{next: policies, gate: cfg.Gate}
	}
	s := &Server{
		policies:    policies,
		callers:     newCallers(cfg.Clients, cfg.Tokens),
		ready:       cfg.Ready,
		logger:      cfg.Logger,
		callTimeout: cfg.CallTimeout,
		router:      router,
		metrics:     cfg.Metrics,
		export:      cfg.Events,
		importer:    cfg.Imports,
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	if s.callTimeout == 0 {
		s.callTimeout = DefaultCallTimeout
	}
	return s, nil
}

// route is one endpoint: a method and a path pattern, whether it needs a
// token and which scope, and its handler.
type route struct {
	method  string
	path    string
	auth    bool
	scope   auth.Scope
	handler http.HandlerFunc
}

func (s *Server) routes() []route {
	var export []route
	if s.export != nil {
		export = append(export, route{http.MethodGet, "/v1/events", true, auth.ScopeRead, s.events})
	}
	if s.importer != nil {
		export = append(export, route{http.MethodPost, "/v1/imports", true, auth.ScopeOperate, s.imports})
	}
	return append(append([]route{
		{http.MethodPost, "/v1/insurance-results", true, auth.ScopeReport, s.report},
		{http.MethodGet, "/v1/policies", true, auth.ScopeRead, s.list},
		{http.MethodGet, "/v1/policies/{biz_id}", true, auth.ScopeRead, s.status},
		{http.MethodPost, "/v1/policies/{biz_id}/callbacks/retry", true, auth.ScopeOperate, s.retry},
		{http.MethodPost, "/v1/policies/{biz_id}/callbacks/skip", true, auth.ScopeOperate, s.skip},
		{http.MethodGet, "/healthz", false, "", s.healthz},
		{http.MethodGet, "/readyz", false, "", s.readyz},
		{http.MethodGet, api.OpenAPIPath, false, "", s.openAPI},
	}, export...), s.topRoutes()...)
}

// Handler returns the API's handler. Every route, the 405 answer for a
// known path with another method and the 404 answer for anything else go
// through the access log, and all /v1 paths through authentication first,
// so an unauthenticated caller learns nothing about which routes exist.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	allowed := map[string][]string{}
	var paths []string
	for _, rt := range s.routes() {
		h := http.Handler(rt.handler)
		if rt.auth {
			h = s.authenticate(rt.scope, h)
		}
		mux.Handle(rt.method+" "+rt.path, s.logged(h))
		if _, seen := allowed[rt.path]; !seen {
			paths = append(paths, rt.path)
		}
		allowed[rt.path] = append(allowed[rt.path], rt.method)
	}
	// A pattern without a method matches only when no method-specific
	// pattern for the same path does, which is exactly "wrong method". The
	// mux would answer that itself, but in plain text.
	for _, path := range paths {
		h := methodNotAllowed(allowed[path])
		if strings.HasPrefix(path, "/v1/") {
			h = s.authenticate("", h)
		}
		mux.Handle(path, s.logged(h))
	}
	mux.Handle("/v1/", s.logged(s.authenticate("", http.HandlerFunc(notFound))))
	mux.Handle("/", s.logged(http.HandlerFunc(notFound)))
	return mux
}

func methodNotAllowed(methods []string) http.Handler {
	allow := strings.Join(methods, ", ")
	if strings.Contains(allow, http.MethodGet) {
		// The mux routes HEAD to GET patterns.
		allow += ", " + http.MethodHead
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, &apiError{
			status:  http.StatusMethodNotAllowed,
			Code:    "method_not_allowed",
			Message: fmt.Sprintf("method %s is not allowed here (allowed: %s)", r.Method, allow),
		})
	})
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, &apiError{status: http.StatusNotFound, Code: codeNotFound, Message: "no such endpoint"})
}
