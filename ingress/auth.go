package ingress

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// tokenSet holds the SHA-256 digests of the accepted bearer tokens.
// Comparing fixed-length digests in constant time hides both a token's
// content and its length from a caller timing the answers.
type tokenSet [][sha256.Size]byte

func newTokenSet(tokens []string) tokenSet {
	set := make(tokenSet, len(tokens))
	for i, t := range tokens {
		set[i] = sha256.Sum256([]byte(t))
	}
	return set
}

// contains compares against every token, without stopping at a match, so
// the time taken does not say which token matched.
func (s tokenSet) contains(token string) bool {
	digest := sha256.Sum256([]byte(token))
	found := 0
	for i := range s {
		found |= subtle.ConstantTimeCompare(digest[:], s[i][:])
	}
	return found == 1
}

// authenticate lets a request through only with "Authorization: Bearer
// <token>" naming an accepted token.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		switch {
		case !ok || !strings.EqualFold(scheme, "Bearer") || token == "":
			w.Header().Set("WWW-Authenticate", `Bearer realm="insuranceflow"`)
			writeError(w, &apiError{status: http.StatusUnauthorized, Code: codeUnauthorized,
				Message: "an Authorization: Bearer <token> header is required"})
		case !s.tokens.contains(token):
			w.Header().Set("WWW-Authenticate", `Bearer realm="insuranceflow", error="invalid_token"`)
			writeError(w, &apiError{status: http.StatusUnauthorized, Code: codeUnauthorized,
				Message: "the bearer token is not valid"})
		default:
			next.ServeHTTP(w, r)
		}
	})
}
