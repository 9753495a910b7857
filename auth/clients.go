package auth

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
)

// Clients are the callers the ingress accepts, each with its token's
// SHA-256 digest. Only digests are kept: a token written as sha256:<hex>
// in the clients file never exists in clear on the server at all.
type Clients struct {
	entries []client
}

type client struct {
	caller Caller
	digest [sha256.Size]byte
}

// ClientsError is a line of a clients file that cannot be used. It names
// the source and line, never the token.
type ClientsError struct {
	Source  string
	Line    int
	Problem string
}

func (e *ClientsError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.Source, e.Problem)
	}
	return fmt.Sprintf("%s line %d: %s", e.Source, e.Line, e.Problem)
}

// ParseClients reads a clients file: one caller per line,
//
//	name:scopes:token
//
// scopes a comma-separated subset of report, read and operate; the token
// in clear or as sha256:<64 hex digits> of the token. Blank lines and lines
// starting with # are ignored. Names and tokens must be unique. source
// names the file in errors.
func ParseClients(r io.Reader, source string) (*Clients, error) {
	cs := &Clients{}
	names := map[string]int{}
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		bad := func(format string, args ...any) error {
			return &ClientsError{Source: source, Line: n, Problem: fmt.Sprintf(format, args...)}
		}
		// The token is last and may itself contain colons.
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			return nil, bad("want name:scopes:token")
		}
		name, scopeList, token := strings.TrimSpace(parts[0]), parts[1], strings.TrimSpace(parts[2])
		if !validName(name) {
			return nil, bad("name %q: want 1 to 64 letters, digits, '-', '_', '.' or '@'", name)
		}
		if first, dup := names[name]; dup {
			return nil, bad("name %q is already used on line %d", name, first)
		}
		names[name] = n
		var scopes []Scope
		for _, s := range strings.Split(scopeList, ",") {
			s = strings.TrimSpace(s)
			sc, err := ParseScope(s)
			if err != nil {
				return nil, bad("%v", err)
			}
			if !containsScope(scopes, sc) {
				scopes = append(scopes, sc)
			}
		}
		digest, err := tokenDigest(token)
		if err != nil {
			return nil, bad("%v", err)
		}
		for _, e := range cs.entries {
			if subtle.ConstantTimeCompare(e.digest[:], digest[:]) == 1 {
				return nil, bad("the token of %q is also %q's; each caller needs its own", name, e.caller.Name)
			}
		}
		cs.entries = append(cs.entries, client{caller: Caller{Name: name, Scopes: scopes}, digest: digest})
	}
	if err := sc.Err(); err != nil {
		return nil, &ClientsError{Source: source, Problem: "cannot read: " + err.Error()}
	}
	return cs, nil
}

func containsScope(list []Scope, s Scope) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// minTokenLen keeps guessable tokens out of a clients file.
const minTokenLen = 16

// tokenDigest is the SHA-256 of a token given in clear, or the digest
// given as sha256:<hex>.
func tokenDigest(token string) ([sha256.Size]byte, error) {
	var d [sha256.Size]byte
	if hexDigest, ok := strings.CutPrefix(token, "sha256:"); ok {
		b, err := hex.DecodeString(hexDigest)
		if err != nil || len(b) != sha256.Size {
			return d, fmt.Errorf("sha256: token must be followed by 64 hex digits")
		}
		copy(d[:], b)
		return d, nil
	}
	if len(token) < minTokenLen {
		return d, fmt.Errorf("token is shorter than %d characters", minTokenLen)
	}
	return sha256.Sum256([]byte(token)), nil
}

// Add adds a caller with a token in clear, e.g. the development tokens of
// INGRESS_TOKENS, which get every scope.
func (cs *Clients) Add(c Caller, token string) {
	cs.entries = append(cs.entries, client{caller: c, digest: sha256.Sum256([]byte(token))})
}

// Len is the number of callers.
func (cs *Clients) Len() int { return len(cs.entries) }

// Names are the callers' names, in file order.
func (cs *Clients) Names() []string {
	out := make([]string, len(cs.entries))
	for i, e := range cs.entries {
		out[i] = e.caller.Name
	}
	return out
}

// Authenticate returns the caller whose token this is. It compares
// fixed-length digests in constant time and does not stop at a match, so
// the time taken says neither which caller matched nor how long its token
// is.
func (cs *Clients) Authenticate(token string) (Caller, bool) {
	digest := sha256.Sum256([]byte(token))
	match := -1
	for i := range cs.entries {
		if subtle.ConstantTimeCompare(digest[:], cs.entries[i].digest[:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return Caller{}, false
	}
	return cs.entries[match].caller, true
}
