package store

import (
	"net/url"
	"slices"
	"strings"
)

// RedactedPassword stands for a password in a URL RedactURL returns.
const RedactedPassword = "xxxxx"

// passwordParams are the query parameters of a PostgreSQL URL that carry a
// password (libpq's password and the client key's sslpassword).
var passwordParams = []string{"password", "sslpassword"}

// RedactURL returns a DATABASE_URL fit for a log line or an error message:
// the user-info password and every password or sslpassword query parameter
// are replaced by RedactedPassword; everything else is kept, so the reader
// still sees which database is meant.
//
// It is the one function every program uses to show a database URL.
func RedactURL(databaseURL string) string {
	out, _ := redactURL(databaseURL)
	return out
}

// URLHasPassword reports whether a database URL carries a password, in its
// user-info or as a password or sslpassword query parameter (a URL that is
// not scheme://… at all counts as having one: nothing tells that it does
// not). A password given on a command line is visible to every user of the
// host (ps, /proc), so the programs refuse such a flag.
func URLHasPassword(databaseURL string) bool {
	_, found := redactURL(databaseURL)
	return found
}

// redactURL masks the URL's passwords and says whether it found one. It
// works on the text, not on a parsed URL, so that a URL too malformed to
// parse (a password with an unescaped '/', '?' or '#') loses its password
// too, and it masks too much rather than too little: the user-info is
// taken to end at the URL's last '@'.
func redactURL(databaseURL string) (string, bool) {
	scheme, rest, ok := strings.Cut(databaseURL, "://")
	if !ok {
		return "[unparseable database URL]", true
	}
	if strings.EqualFold(scheme, "sqlite") {
		// A file path: its '@' and ':' are the file's name, not a login.
		return databaseURL, false
	}
	found := false
	afterUser := 0
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		afterUser = at
		if user, password, hasPassword := strings.Cut(rest[:at], ":"); hasPassword {
			found = found || password != ""
			rest = user + ":" + RedactedPassword + rest[at:]
			afterUser = len(user) + 1 + len(RedactedPassword)
		}
	}
	head, query, hasQuery := strings.Cut(rest[afterUser:], "?")
	if !hasQuery {
		return scheme + "://" + rest, found
	}
	pairs := strings.Split(query, "&")
	for i, pair := range pairs {
		if k, v, hasValue := strings.Cut(pair, "="); hasValue && isPasswordParam(k) {
			found = found || v != ""
			pairs[i] = k + "=" + RedactedPassword
		}
	}
	return scheme + "://" + rest[:afterUser] + head + "?" + strings.Join(pairs, "&"), found
}

func isPasswordParam(key string) bool {
	if k, err := url.QueryUnescape(key); err == nil {
		key = k
	}
	return slices.Contains(passwordParams, strings.ToLower(strings.TrimSpace(key)))
}
