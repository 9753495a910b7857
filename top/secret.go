package top

import (
	"fmt"
	"log/slog"
)

// redacted is what every rendering of a Secret shows instead of its value.
const redacted = "[redacted]"

// Secret is a credential (the app secret or a session key). Every way Go
// renders a value (fmt with any verb, slog, encoding/json, encoding.TextMarshaler)
// shows "[redacted]"; only Reveal returns the value, so a leak needs an
// explicit, greppable call.
type Secret string

var (
	_ fmt.Stringer   = Secret("")
	_ fmt.GoStringer = Secret("")
	_ fmt.Formatter  = Secret("")
	_ slog.LogValuer = Secret("")
)

// Reveal returns the secret's value, for signing and for sending the session.
func (s Secret) Reveal() string { return string(s) }

// IsZero reports whether the secret is unset.
func (s Secret) IsZero() bool { return s == "" }

// String returns "[redacted]".
func (s Secret) String() string { return redacted }

// GoString returns "[redacted]" so %#v of a struct holding a Secret is safe.
func (s Secret) GoString() string { return redacted }

// Format writes "[redacted]" for every verb, including %s, %q, %x and %d,
// which would otherwise bypass String for a string-kinded type.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue keeps the value out of slog output.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON returns "[redacted]" as a JSON string.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText returns "[redacted]", for encoders that prefer text (slog's
// text handler, YAML, XML).
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
