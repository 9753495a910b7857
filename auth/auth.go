// Package auth knows who calls insuranceflow and what they may do: callers
// with a name and scopes, authenticated by bearer token, and the caller of
// a request carried in its context, so an operator action can record who
// took it. It is a leaf package: the ingress authenticates with it, the
// starter names its OS user with it, and policyclient passes the name on.
package auth

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Scope is one kind of access.
type Scope string

const (
	// ScopeReport may report insurance-result events.
	ScopeReport Scope = "report"
	// ScopeRead may read policies (status, list).
	ScopeRead Scope = "read"
	// ScopeOperate may retry and skip parked callbacks.
	ScopeOperate Scope = "operate"
)

// AllScopes are every scope, in the order they are documented.
func AllScopes() []Scope { return []Scope{ScopeReport, ScopeRead, ScopeOperate} }

// ParseScope reads one scope name.
func ParseScope(s string) (Scope, error) {
	for _, sc := range AllScopes() {
		if string(sc) == s {
			return sc, nil
		}
	}
	return "", fmt.Errorf("unknown scope %q (want report, read or operate)", s)
}

// Caller is an authenticated caller: a name for audit trails and logs (a
// business system, an operator, never a token) and its scopes.
type Caller struct {
	Name   string
	Scopes []Scope
}

// Can reports whether the caller has scope s.
func (c Caller) Can(s Scope) bool { return slices.Contains(c.Scopes, s) }

// String is the caller's name.
func (c Caller) String() string { return c.Name }

type callerKey struct{}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// FromContext is the caller ctx carries, if any.
func FromContext(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// validName is what a caller's name may look like: it goes into logs and
// the store's audit trail, so no spaces, colons or control characters.
func validName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	return strings.IndexFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' || r == '@')
	}) < 0
}
