package ingress

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/insuranceflow/insuranceflow/auth"
)

// newCallers joins the named callers of the clients file with the
// development tokens of INGRESS_TOKENS, which get every scope and are named
// by position ("ingress-token-1"): a name, never the token, goes into logs
// and audit trails.
func newCallers(clients *auth.Clients, tokens []string) *auth.Clients {
	out := &auth.Clients{}
	if clients != nil {
		*out = *clients
	}
	for i, t := range tokens {
		out.Add(auth.Caller{Name: "ingress-token-" + strconv.Itoa(i+1), Scopes: auth.AllScopes()}, t)
	}
	return out
}

// authenticate lets a request through only with "Authorization: Bearer
// <token>" naming a known caller that has scope (none: any caller), and
// puts the caller into the request's context.
func (s *Server) authenticate(scope auth.Scope, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="insuranceflow"`)
			writeError(w, &apiError{status: http.StatusUnauthorized, Code: codeUnauthorized,
				Message: "an Authorization: Bearer <token> header is required"})
			return
		}
		caller, known := s.callers.Authenticate(token)
		if !known {
			w.Header().Set("WWW-Authenticate", `Bearer realm="insuranceflow", error="invalid_token"`)
			writeError(w, &apiError{status: http.StatusUnauthorized, Code: codeUnauthorized,
				Message: "the bearer token is not valid"})
			return
		}
		noteCaller(r.Context(), caller.Name)
		if scope != "" && !caller.Can(scope) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="insuranceflow", error="insufficient_scope", scope="`+string(scope)+`"`)
			writeError(w, &apiError{status: http.StatusForbidden, Code: codeForbidden,
				Message: "caller " + caller.Name + " does not have the " + string(scope) + " scope"})
			return
		}
		next.ServeHTTP(w, r.WithContext(auth.WithCaller(r.Context(), caller)))
	})
}

// callerName is the name of the request's caller, for the audit trail of
// an operator action; authenticate always sets one on /v1 routes.
func callerName(ctx context.Context) string {
	if c, ok := auth.FromContext(ctx); ok {
		return c.Name
	}
	return ""
}
