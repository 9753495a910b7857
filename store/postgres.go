package store

import (
	"cmp"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"
	"github.com/pressly/goose/v3/lock"
)

const (
	// poolMaxConnsParam is the one URL parameter the store reads itself
	// (named as pgxpool names it); every other parameter is pgx's.
	poolMaxConnsParam = "pool_max_conns"
	// defaultPostgresMaxConns bounds one Store's connections, so that a worker
	// running many activities at once cannot use up the server's
	// max_connections (100 by default) for everyone sharing it.
	defaultPostgresMaxConns = 10

	// migrationLockID names the advisory lock under which one process at a
	// time migrates. It is not goose's default id, so that another
	// goose-migrated application sharing the database never waits for ours.
	migrationLockID int64 = 0x1f5e_f10a_7000_0001
	// A worker waits up to five minutes for another to finish migrating,
	// polling every second (goose's finest period).
	migrationLockPollSeconds = 1
	migrationLockPolls       = 300
)

// newPostgresMigrationLocker returns the session locker PostgreSQL
// migrations run under.
func newPostgresMigrationLocker() (lock.SessionLocker, error) {
	return lock.NewPostgresSessionLocker(
		lock.WithLockID(migrationLockID),
		lock.WithLockTimeout(migrationLockPollSeconds, migrationLockPolls),
	)
}

// postgresConfig builds the PostgreSQL settings for a postgres:// or
// postgresql:// URL with a lower-case scheme.
func postgresConfig(databaseURL string) (connConfig, error) {
	secrets := urlSecrets(databaseURL)
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return connConfig{}, &URLError{Reason: "postgres URL: " + parseProblem(err, secrets)}
	}
	if cfg.Password != "" {
		secrets = append(secrets, cfg.Password) // it may have come from PGPASSWORD or ~/.pgpass
	}
	// pgx would send an unknown parameter to the server as a setting, which
	// the server refuses; this one is the store's, so it is taken out.
	maxConns := defaultPostgresMaxConns
	if v, ok := cfg.RuntimeParams[poolMaxConnsParam]; ok {
		delete(cfg.RuntimeParams, poolMaxConnsParam)
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return connConfig{}, &URLError{Reason: fmt.Sprintf("postgres URL: %s=%q is not a positive integer", poolMaxConnsParam, v)}
		}
		maxConns = n
	}
	return connConfig{
		dialect:         postgresDialect,
		target:          postgresTarget(cfg),
		secrets:         secrets,
		migrationLocker: newPostgresMigrationLocker,
		connect: func() (*sqlx.DB, error) {
			db := sqlx.NewDb(stdlib.OpenDB(*cfg), postgresDialect.driver)
			db.SetMaxOpenConns(maxConns)
			// Idle connections are kept up to the cap: reconnecting costs a
			// TLS and authentication round trip per transaction otherwise.
			db.SetMaxIdleConns(maxConns)
			return db, nil
		},
	}, nil
}

// postgresTarget names a PostgreSQL database in errors: user, hosts,
// database and schema, never the password or other parameters (sslpassword
// is one).
func postgresTarget(cfg *pgx.ConnConfig) string {
	// pgx lists each further host once per TLS mode it will try.
	var hosts []string
	for _, h := range append([]*pgconn.FallbackConfig{{Host: cfg.Host, Port: cfg.Port}}, cfg.Fallbacks...) {
		if hp := net.JoinHostPort(h.Host, strconv.Itoa(int(h.Port))); !slices.Contains(hosts, hp) {
			hosts = append(hosts, hp)
		}
	}
	u := url.URL{Scheme: "postgres", Host: strings.Join(hosts, ","), Path: "/" + cfg.Database}
	if cfg.User != "" {
		u.User = url.User(cfg.User)
	}
	q := url.Values{}
	if strings.HasPrefix(cfg.Host, "/") { // a Unix socket directory
		u.Host = ""
		q.Set("host", cfg.Host)
	}
	if sp, ok := cfg.RuntimeParams["search_path"]; ok {
		q.Set("search_path", sp)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// parseProblem is pgx's reason for refusing a URL without the URL: pgx
// quotes it with the password masked only on a best-effort basis.
func parseProblem(err error, secrets []string) string {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "cannot parse `"); ok {
		if _, reason, ok := strings.Cut(rest, "`: "); ok {
			msg = reason
		}
	}
	return mask(msg, secrets)
}

// urlSecrets returns every string of a database URL that could be a
// password: the userinfo after its first ':' (up to each '@', since the URL
// may be malformed) and the password and sslpassword parameters, raw and
// percent-decoded. Masking a few harmless strings too is the price of never
// missing one in a URL too broken to parse.
func urlSecrets(databaseURL string) []string {
	_, rest, _ := strings.Cut(databaseURL, "://")
	var out []string
	add := func(s string) {
		if s == "" {
			return
		}
		out = append(out, s)
		if dec, err := url.PathUnescape(s); err == nil && dec != s && dec != "" {
			out = append(out, dec)
		}
	}
	for i := range len(rest) {
		if rest[i] != '@' {
			continue
		}
		if _, pw, ok := strings.Cut(rest[:i], ":"); ok {
			add(pw)
		}
	}
	if _, query, ok := strings.Cut(rest, "?"); ok {
		for pair := range strings.SplitSeq(query, "&") {
			k, v, _ := strings.Cut(pair, "=")
			if key, err := url.QueryUnescape(k); err == nil {
				k = key
			}
			if k = strings.ToLower(strings.TrimSpace(k)); k == "password" || k == "sslpassword" {
				add(v)
				if dec, err := url.QueryUnescape(v); err == nil {
					add(dec)
				}
			}
		}
	}
	// Longest first, so that masking a secret never leaves the tail of a
	// longer one that contains it.
	slices.SortFunc(out, func(a, b string) int {
		return cmp.Or(cmp.Compare(len(b), len(a)), strings.Compare(a, b))
	})
	return slices.Compact(out)
}

// maskedSecret replaces a secret in error messages.
const maskedSecret = "xxxxx"

func mask(msg string, secrets []string) string {
	for _, s := range secrets {
		msg = strings.ReplaceAll(msg, s, maskedSecret)
	}
	return msg
}

// redactedError is an error whose message had secrets masked. errors.Is and
// errors.As still reach the original error and its types.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redact masks secrets in err's message; err is returned as it is when its
// message holds none.
func redact(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if masked := mask(msg, secrets); masked != msg {
		return &redactedError{msg: masked, err: err}
	}
	return err
}
