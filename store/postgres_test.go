package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
)

// testPostgresURLVar names the PostgreSQL server the tests use. Its user
// must be allowed to create databases: the tests create and drop their own.
const testPostgresURLVar = "TEST_POSTGRES_URL"

// requirePostgresVar, when set (.ci/run sets it), turns the skip for an
// unset TEST_POSTGRES_URL into a failure.
const requirePostgresVar = "INSURANCEFLOW_REQUIRE_POSTGRES"

// postgresBackend gives each test a schema of its own (a fresh, empty
// database as far as the store can tell: its tables and goose's go where
// search_path points) in one database per top-level test, which is dropped
// when that test ends. Creating a database per test would be cleaner still
// but costs half a second each.
//
// The database has an ICU en-US default collation, under which
// 'a' < 'B' < 'b': if a query relied on the database's collation instead of
// byte order, the suite would see it.
func postgresBackend(top *testing.T) backend {
	base := os.Getenv(testPostgresURLVar)
	if base == "" && os.Getenv(requirePostgresVar) != "" {
		// CI sets this: there, a missing PostgreSQL is a failure, never a skip.
		top.Fatalf("%s is set but %s is not: the PostgreSQL tests must run", requirePostgresVar, testPostgresURLVar)
	}
	if base == "" {
		return backend{name: "postgres", skip: testPostgresURLVar +
			" is not set; set it to a PostgreSQL URL whose user may create databases" +
			" (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable) to run the PostgreSQL tests"}
	}
	var (
		once     sync.Once
		dbURL    string
		admin    *sqlx.DB
		setupErr error
	)
	return backend{name: "postgres", newURL: func(t *testing.T) string {
		t.Helper()
		once.Do(func() {
			// Registered on the top-level test, so the database outlives
			// every subtest and is dropped after all of them.
			dbURL, setupErr = createPostgresDatabase(top, base, linguisticCollation)
			if setupErr == nil {
				admin, setupErr = sqlx.Connect("pgx", dbURL)
			}
			if admin != nil {
				top.Cleanup(func() { _ = admin.Close() })
			}
		})
		if setupErr != nil {
			t.Fatalf("set up the test database on %s: %v", testPostgresURLVar, setupErr)
		}
		schema := "t_" + randomHex()
		if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
			t.Fatalf("create schema: %v", err)
		}
		t.Cleanup(func() {
			if _, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
				t.Errorf("drop schema %s: %v", schema, err)
			}
		})
		return withParam(t, dbURL, "search_path", schema)
	}}
}

// linguisticCollation makes a database's default collation ICU's en-US.
const linguisticCollation = "LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"

// requirePostgres returns TEST_POSTGRES_URL, skipping the test when it is
// unset.
func requirePostgres(t *testing.T) string {
	t.Helper()
	if b := postgresBackend(t); b.skip != "" {
		t.Skip(b.skip)
	}
	return os.Getenv(testPostgresURLVar)
}

func randomHex() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// adminExec runs statements on the database at rawURL.
func adminExec(rawURL string, statements ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := sqlx.ConnectContext(ctx, "pgx", rawURL)
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()
	for _, stmt := range statements {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", stmt, err)
		}
	}
	return nil
}

// createPostgresDatabase creates an empty database with the given options
// and returns base with its path pointing at it. The database is dropped
// when t ends, after the stores opened on it in t are closed (cleanups run
// in reverse order).
func createPostgresDatabase(t testing.TB, base, options string) (string, error) {
	name := "insuranceflow_test_" + randomHex()
	if err := adminExec(base, fmt.Sprintf("CREATE DATABASE %s TEMPLATE template0 ENCODING 'UTF8' %s", name, options)); err != nil {
		return "", err
	}
	t.Cleanup(func() {
		if err := adminExec(base, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name)); err != nil {
			t.Errorf("drop test database: %v", err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("%s does not parse as a URL: %w", testPostgresURLVar, err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

func withPath(t *testing.T, rawURL, path string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("%s does not parse as a URL: %v", testPostgresURLVar, err)
	}
	u.Path = path
	return u.String()
}

func withParam(t *testing.T, rawURL, key, value string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("%s does not parse as a URL: %v", testPostgresURLVar, err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

func withPassword(t *testing.T, rawURL, password string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("%s does not parse as a URL: %v", testPostgresURLVar, err)
	}
	u.User = url.UserPassword(u.User.Username(), password)
	return u.String()
}

func TestPostgresURLForms(t *testing.T) {
	base := requirePostgres(t)
	db := postgresBackend(t).newURL
	roundTrip := func(t *testing.T, s *Store) {
		t.Helper()
		mustRecord(t, s, policy("B1"), event("B1", 1, 1, "pre_insured"))
		if got := mustPolicy(t, s, "B1").State; got != "pre_insured" {
			t.Fatalf("state=%q, want pre_insured", got)
		}
	}
	t.Run("PostgresqlScheme", func(t *testing.T) {
		u := db(t)
		roundTrip(t, openStore(t, "postgresql://"+strings.TrimPrefix(u, "postgres://")))
	})
	t.Run("SchemeCaseInsensitive", func(t *testing.T) {
		u := db(t)
		roundTrip(t, openStore(t, "PostgreSQL://"+strings.TrimPrefix(u, "postgres://")))
	})
	t.Run("SearchPathSchema", func(t *testing.T) {
		// The backend's URLs are themselves this form: search_path=<schema>.
		u := db(t)
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		schema := parsed.Query().Get("search_path")
		s := openStore(t, u)
		roundTrip(t, s)
		tablesIn := func(schema string) string {
			t.Helper()
			var names []string
			if err := s.db.SelectContext(context.Background(), &names, s.db.Rebind(
				`SELECT tablename FROM pg_tables WHERE schemaname = ?
				AND tablename IN ('policies', 'events', 'attempts', 'goose_db_version') ORDER BY tablename`), schema); err != nil {
				t.Fatal(err)
			}
			return strings.Join(names, ",")
		}
		if got := tablesIn(schema); got != "attempts,events,goose_db_version,policies" {
			t.Fatalf("tables in schema %s=%q, want all of the store's", schema, got)
		}
		if got := tablesIn("public"); got != "" {
			t.Fatalf("tables in schema public=%q, want none", got)
		}
		// A second deployment in another schema of the same database is
		// migrated on its own and sees none of the first one's data.
		other := openStore(t, db(t))
		if _, err := other.Policy(context.Background(), "B1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("store in another schema sees B1 of schema %s (err %v)", schema, err)
		}
	})
	t.Run("PoolMaxConns", func(t *testing.T) {
		u := db(t)
		if got := openStore(t, u).db.Stats().MaxOpenConnections; got != defaultPostgresMaxConns {
			t.Fatalf("default max open connections=%d, want %d", got, defaultPostgresMaxConns)
		}
		s := openStore(t, withParam(t, u, poolMaxConnsParam, "3"))
		if got := s.db.Stats().MaxOpenConnections; got != 3 {
			t.Fatalf("max open connections=%d, want 3", got)
		}
		roundTrip(t, s) // the parameter is not passed on to the server, which would refuse it
	})
	t.Run("NonexistentDatabase", func(t *testing.T) {
		u := withPassword(t, withPath(t, base, "/insuranceflow_no_such_db"), "s3cret-pw")
		_, err := Open(context.Background(), u)
		var openErr *OpenError
		if !errors.As(err, &openErr) {
			t.Fatalf("err=%v (%T), want *OpenError", err, err)
		}
		if !strings.Contains(openErr.Target, "/insuranceflow_no_such_db") || !strings.Contains(err.Error(), "insuranceflow_no_such_db") {
			t.Fatalf("err=%q target=%q, want both to name the database", err, openErr.Target)
		}
		if strings.Contains(err.Error(), "s3cret-pw") || strings.Contains(openErr.Target, "s3cret-pw") {
			t.Fatalf("error %q leaks the password", err)
		}
	})
}

// TestPostgresByteOrderUnderLinguisticCollation makes sure the suite's
// databases really collate linguistically, so that its byte-order test
// proves the store does not depend on the database's collation.
func TestPostgresByteOrderUnderLinguisticCollation(t *testing.T) {
	requirePostgres(t)
	s := openStore(t, postgresBackend(t).newURL(t))
	var linguistic bool
	if err := s.db.QueryRowContext(context.Background(), `SELECT 'a' < 'B'`).Scan(&linguistic); err != nil {
		t.Fatal(err)
	}
	if !linguistic {
		t.Fatal("test database compares 'a' < 'B' as false: it sorts by bytes, so the byte-order test proves nothing")
	}
	for _, id := range []string{"b", "B", "a", "A"} {
		mustRecord(t, s, Policy{BizID: id, InsuranceType: 1}, event(id, 1, 1, "pre_insured"))
	}
	ps, err := s.ListPolicies(context.Background(), ListFilter{AfterBizID: "A"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.BizID)
	}
	if strings.Join(got, ",") != "B,a,b" {
		t.Fatalf("policies after \"A\"=%v, want B,a,b (byte order)", got)
	}
}

// Bad PostgreSQL URLs are refused before any connection, so these run
// without a server.
func TestPostgresBadURL(t *testing.T) {
	tests := []struct {
		name string
		url  string
		want string // in the message
	}{
		{"BadPort", "postgres://app:s3cret@db.internal:notaport/flow", "port"},
		{"BadSSLMode", "postgres://app:s3cret@db.internal/flow?sslmode=sometimes", "sslmode"},
		{"BadConnectTimeout", "postgresql://app@db.internal/flow?password=s3cret&connect_timeout=soon", "connect_timeout"},
		{"ZeroPoolMaxConns", "postgres://app:s3cret@db.internal/flow?pool_max_conns=0", `pool_max_conns="0" is not a positive integer`},
		{"WordPoolMaxConns", "postgres://app:s3cret@db.internal/flow?pool_max_conns=many", `pool_max_conns="many"`},
		{"PasswordWithColon", "postgres://app:s3cret:x@db.internal:port/flow", "port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(context.Background(), tt.url)
			if err == nil {
				_ = s.Close()
				t.Fatalf("Open succeeded, want an error")
			}
			var bad *URLError
			if !errors.As(err, &bad) {
				t.Fatalf("err=%v (%T), want *URLError", err, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("error %q leaks the password", err)
			}
		})
	}
}

// TestPostgresUnreachable needs no server either: it connects to ports
// nothing listens on.
func TestPostgresUnreachable(t *testing.T) {
	closedPort := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		return addr
	}
	a1, a2 := closedPort(), closedPort()
	tests := []struct {
		name, url, target string
	}{
		{"OneHost", "postgres://app:s3cret%21@" + a1 + "/flow?sslmode=disable&search_path=audit",
			"postgres://app@" + a1 + "/flow?search_path=audit"},
		{"TwoHosts", "postgresql://app:s3cret%21@" + a1 + "," + a2 + "/flow?sslmode=prefer&application_name=w1",
			"postgres://app@" + a1 + "," + a2 + "/flow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := Open(ctx, tt.url)
			var openErr *OpenError
			if !errors.As(err, &openErr) {
				t.Fatalf("err=%v (%T), want *OpenError", err, err)
			}
			if openErr.Target != tt.target || !strings.Contains(err.Error(), "cannot open database "+tt.target) {
				t.Fatalf("err=%q target=%q, want target %s", err, openErr.Target, tt.target)
			}
			for _, secret := range []string{"s3cret!", "s3cret%21"} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error %q leaks the password", err)
				}
			}
		})
	}
}

func TestRedact(t *testing.T) {
	secrets := urlSecrets("postgres://app:p%40ss@db/flow?sslpassword=key-pw&Password=other")
	for _, want := range []string{"p%40ss", "p@ss", "key-pw", "other"} {
		found := false
		for _, s := range secrets {
			found = found || s == want
		}
		if !found {
			t.Errorf("urlSecrets=%q, missing %q", secrets, want)
		}
	}
	inner := &OpenError{Target: "postgres://app@db:5432/flow", Err: errors.New("server said: password p@ss and key-pw rejected")}
	err := redact(fmt.Errorf("open: %w", inner), secrets)
	if strings.Contains(err.Error(), "p@ss") || strings.Contains(err.Error(), "key-pw") {
		t.Fatalf("redacted error %q still holds a secret", err)
	}
	if !strings.Contains(err.Error(), "password xxxxx and xxxxx rejected") {
		t.Fatalf("redacted error %q, want the secrets replaced by xxxxx", err)
	}
	var openErr *OpenError
	if !errors.As(err, &openErr) || openErr != inner {
		t.Fatalf("errors.As through the redacted error found %v, want the original *OpenError", openErr)
	}
	plain := errors.New("nothing secret here")
	if got := redact(plain, secrets); got != plain {
		t.Fatalf("redact changed an error without secrets: %v", got)
	}
}
