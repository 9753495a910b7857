package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func TestParseClients(t *testing.T) {
	sum := sha256.Sum256([]byte("hashed-token-0123456789"))
	file := `# callers of the ingress
claims-system:report:plain-token-0123456789

ops-alice: read, operate ,read :sha256:` + hex.EncodeToString(sum[:]) + `
odd:report:token:with:colons-0123
`
	cs, err := ParseClients(strings.NewReader(file), "clients.txt")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cs.Names(), ","); got != "claims-system,ops-alice,odd" {
		t.Fatalf("names=%s", got)
	}
	for _, tt := range []struct {
		token, name string
		scopes      string
	}{
		{"plain-token-0123456789", "claims-system", "report"},
		{"hashed-token-0123456789", "ops-alice", "read,operate"},
		{"token:with:colons-0123", "odd", "report"},
	} {
		c, ok := cs.Authenticate(tt.token)
		if !ok || c.Name != tt.name {
			t.Fatalf("Authenticate(%s)=%v,%v, want %s", tt.token, c, ok, tt.name)
		}
		var got []string
		for _, s := range c.Scopes {
			got = append(got, string(s))
		}
		if strings.Join(got, ",") != tt.scopes {
			t.Fatalf("%s scopes=%v, want %s", tt.name, got, tt.scopes)
		}
	}
	if _, ok := cs.Authenticate("sha256:" + hex.EncodeToString(sum[:])); ok {
		t.Fatal("the digest itself authenticated")
	}
	if _, ok := cs.Authenticate("unknown-token-0123456789"); ok {
		t.Fatal("an unknown token authenticated")
	}
}

func TestParseClientsErrorsNameTheLineNeverTheToken(t *testing.T) {
	const secret = "secret-token-0123456789"
	for _, tt := range []struct {
		name, file, want string
	}{
		{"no token", "a:report\n", "clients line 1: want name:scopes:token"},
		{"bad scope", "# c\na:report,admin:" + secret + "\n", `clients line 2: unknown scope "admin" (want report, read or operate)`},
		{"empty scopes", "a::" + secret + "\n", `clients line 1: unknown scope "" (want report, read or operate)`},
		{"bad name", "a b:report:" + secret + "\n", `clients line 1: name "a b": want 1 to 64 letters, digits, '-', '_', '.' or '@'`},
		{"duplicate name", "a:report:" + secret + "\na:read:other-token-0123456789\n", `clients line 2: name "a" is already used on line 1`},
		{"shared token", "a:report:" + secret + "\nb:read:" + secret + "\n", `clients line 2: the token of "b" is also "a"'s; each caller needs its own`},
		{"short token", "a:report:short\n", "clients line 1: token is shorter than 16 characters"},
		{"bad digest", "a:report:sha256:abc\n", "clients line 1: sha256: token must be followed by 64 hex digits"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseClients(strings.NewReader(tt.file), "clients")
			var cerr *ClientsError
			if !errors.As(err, &cerr) || err.Error() != tt.want {
				t.Fatalf("err=%v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error shows the token: %v", err)
			}
		})
	}
}

func TestCallerInContext(t *testing.T) {
	ctx := WithCaller(t.Context(), Caller{Name: "ops-alice", Scopes: []Scope{ScopeOperate}})
	c, ok := FromContext(ctx)
	if !ok || c.Name != "ops-alice" || !c.Can(ScopeOperate) || c.Can(ScopeReport) {
		t.Fatalf("caller=%+v ok=%v", c, ok)
	}
	if _, ok := FromContext(t.Context()); ok {
		t.Fatal("a caller from an empty context")
	}
}
