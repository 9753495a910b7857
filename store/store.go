// Package store owns the SQL audit trail of insuranceflow: one row per policy
// (the state a restarted or reopened workflow resumes from), one per accepted
// insurance-result event, and one per TOP callback attempt. It opens the
// database named by DATABASE_URL (SQLite or PostgreSQL), applies the embedded
// schema migrations with goose, and offers one transaction per method.
//
// The SQL is portable (question-mark placeholders rebound per driver,
// INSERT … ON CONFLICT, BIGINT microsecond timestamps), so both databases run
// the same migrations and the same statements; what differs lives in one
// dialect value per database. Every write is idempotent and race-safe through
// ON CONFLICT clauses and a fixed lock order (policy row before event rows),
// because Temporal retries activities and several workers may share one
// database.
package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/mattn/go-sqlite3" // registers the "sqlite3" database/sql driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var embeddedMigrations embed.FS

// ErrNotFound is wrapped (with the biz_id, and the seq for events) by every
// lookup of a policy or event that the store has never recorded.
var ErrNotFound = errors.New("not found")

// sqliteBusyTimeout is how long a SQLite writer waits for another writer's
// lock before giving up; several workers may share one database file.
const sqliteBusyTimeout = 5 * time.Second

// sqliteStmtCacheSize is how many prepared statements each SQLite
// connection keeps; the store has fewer distinct statements than this.
const sqliteStmtCacheSize = 64

// dialect is what differs between the databases the store runs on. Adding a
// database means one more value of it and one more case in parseURL.
type dialect struct {
	name   string        // what errors call the database
	driver string        // sqlx's name for the placeholder style ("?" is rebound for it)
	goose  goose.Dialect // goose's name for the same database
	// byteOrder follows a text column in comparisons and ORDER BY so that it
	// compares byte by byte whatever collation the database was created
	// with: keyset pagination must agree with Go's string order everywhere.
	byteOrder string
}

var (
	// SQLite's default BINARY collation already compares bytes.
	sqliteDialect   = dialect{name: "sqlite", driver: "sqlite3", goose: goose.DialectSQLite3}
	postgresDialect = dialect{name: "postgres", driver: "pgx", goose: goose.DialectPostgres, byteOrder: ` COLLATE "C"`}
)

// supportedSchemes are listed in the error for any other scheme.
var supportedSchemes = []string{"sqlite", "postgres", "postgresql"}

// Store is the audit trail. It is safe for concurrent use, also by several
// processes sharing one database.
type Store struct {
	db      *sqlx.DB
	dialect dialect
	now     func() time.Time // replaced in tests that need fixed timestamps
}

// connConfig is what Open needs to connect, as derived from a DATABASE_URL.
type connConfig struct {
	dialect dialect
	target  string // what to call the database in errors; never holds a secret
	prepare func() error
	connect func() (*sqlx.DB, error) // a handle with its pool configured; connects lazily
	// migrationLocker, if set, makes one process at a time migrate, so that
	// several workers starting together on a fresh database neither race to
	// create the same tables nor apply a migration twice.
	migrationLocker func() (lock.SessionLocker, error)
	secrets         []string // masked in every error Open returns
}

// Open connects to the database named by databaseURL and applies any pending
// migrations. The scheme is case-insensitive. Supported forms:
//
//	sqlite://relative/path.db   (relative to the working directory at Open)
//	sqlite:///abs/path.db
//	sqlite://:memory:           (private to this Store; one connection)
//	postgres://user:password@host:5432/dbname?sslmode=verify-full
//	postgresql://…              (the same)
//
// The directory of a SQLite file is created if missing. SQLite databases run
// in WAL mode with foreign keys on, a 5 s busy timeout, and write
// transactions that take the write lock when they begin (BEGIN IMMEDIATE), so
// concurrent writers queue instead of failing on a lock upgrade. Processes
// opening one file together take turns migrating under a lock on the file
// beside it named with the suffix "-migrations.lock".
//
// A PostgreSQL URL is a libpq connection URI as the pgx driver reads it:
// several host:port pairs, the PG* environment variables and ~/.pgpass fill
// in what it leaves out, and its query parameters (sslmode, sslrootcert,
// connect_timeout, application_name, search_path=schema for a schema other
// than public, …) apply. One parameter is the store's own: pool_max_conns=N
// caps this Store's connections (default 10), so that many workers stay
// within the server's max_connections. Workers that start together on a
// fresh database take turns migrating under a PostgreSQL advisory lock.
//
// Errors never contain the URL's password.
func Open(ctx context.Context, databaseURL string) (*Store, error) {
	return open(ctx, databaseURL, embeddedMigrations)
}

// open is Open with the migrations as a parameter, so tests can check how a
// failing migration is reported.
func open(ctx context.Context, databaseURL string, migrations fs.FS) (*Store, error) {
	cfg, err := parseURL(databaseURL)
	if err != nil {
		return nil, err
	}
	s, err := connect(ctx, cfg, migrations)
	if err != nil {
		// The drivers mean to keep passwords out of their errors; this makes
		// sure of it for every error the URL's secrets could reach.
		return nil, redact(err, cfg.secrets)
	}
	return s, nil
}

func connect(ctx context.Context, cfg connConfig, migrations fs.FS) (*Store, error) {
	if cfg.prepare != nil {
		if err := cfg.prepare(); err != nil {
			return nil, &OpenError{Target: cfg.target, Err: err}
		}
	}
	db, err := cfg.connect()
	if err != nil {
		return nil, &OpenError{Target: cfg.target, Err: err}
	}
	if err := ping(ctx, db); err != nil {
		_ = db.Close()
		return nil, &OpenError{Target: cfg.target, Err: err}
	}
	s := &Store{db: db, dialect: cfg.dialect, now: time.Now}
	if err := s.migrate(ctx, migrations, cfg.migrationLocker); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// ping opens the first connection. A SQLite connection switches a fresh
// file to WAL as it opens, which needs the file to itself and is refused
// at once ("database is locked") while another process opens the same
// fresh file, without waiting for the busy timeout; so a busy answer is
// tried again for up to that timeout. (TestStore/sqlite/
// ConcurrentOpenOnFreshDatabase failed 3 times in 40 without this.)
func ping(ctx context.Context, db *sqlx.DB) error {
	deadline := time.Now().Add(sqliteBusyTimeout)
	for {
		err := db.PingContext(ctx)
		var se sqlite3.Error
		if err == nil || !errors.As(err, &se) || (se.Code != sqlite3.ErrBusy && se.Code != sqlite3.ErrLocked) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// parseURL turns a DATABASE_URL into connection settings. Errors never quote
// the URL itself: a PostgreSQL URL may carry a password.
func parseURL(databaseURL string) (connConfig, error) {
	if strings.TrimSpace(databaseURL) == "" {
		return connConfig{}, &URLError{Reason: "database URL is empty (want e.g. sqlite://data/insuranceflow.db)"}
	}
	scheme, rest, ok := strings.Cut(databaseURL, "://")
	if !ok || scheme == "" {
		return connConfig{}, &URLError{Reason: "database URL has no scheme:// prefix (want e.g. sqlite://data/insuranceflow.db)"}
	}
	switch lower := strings.ToLower(scheme); lower {
	case "sqlite":
		return sqliteConfig(rest)
	case "postgres", "postgresql":
		// pgx only recognises the lower-case schemes.
		return postgresConfig(lower + "://" + rest)
	default:
		return connConfig{}, &UnsupportedSchemeError{Scheme: scheme, Supported: supportedSchemes}
	}
}

// sqliteConfig builds the SQLite settings for the part of the URL after
// "sqlite://".
func sqliteConfig(path string) (connConfig, error) {
	if path == "" {
		return connConfig{}, &URLError{Reason: "sqlite URL has no path (want sqlite://relative/path.db, sqlite:///abs/path.db or sqlite://:memory:)"}
	}
	// The driver reads everything after '?' as its own parameters; ours are
	// fixed, so a '?' or '#' is a mistake rather than a wish to tune them.
	if strings.ContainsAny(path, "?#") {
		return connConfig{}, &URLError{Reason: fmt.Sprintf("sqlite URL path %q contains '?' or '#'; parameters are not supported", path)}
	}
	// _stmt_cache_size keeps each connection's prepared statements: the
	// store runs the same few statements over and over, and preparing them
	// afresh each time was most of a callback's store time (a CPU profile
	// of the worker under make bench: 8 % of its CPU in sqlite3_prepare).
	params := fmt.Sprintf("_busy_timeout=%d&_foreign_keys=on&_txlock=immediate&_stmt_cache_size=%d",
		sqliteBusyTimeout.Milliseconds(), sqliteStmtCacheSize)
	if path == ":memory:" {
		// WAL does not apply to an in-memory database, and the database
		// lives and dies with its one connection.
		return connConfig{dialect: sqliteDialect, target: ":memory:", connect: func() (*sqlx.DB, error) {
			db, err := sqlx.Open(sqliteDialect.driver, ":memory:?"+params)
			if err != nil {
				return nil, err
			}
			db.SetMaxOpenConns(1)
			db.SetMaxIdleConns(1)
			db.SetConnMaxLifetime(0)
			db.SetConnMaxIdleTime(0)
			return db, nil
		}}, nil
	}
	// Resolved now, so that every pooled connection opens the same file even
	// if the working directory changes later.
	abs, err := filepath.Abs(path)
	if err != nil {
		return connConfig{}, &URLError{Reason: fmt.Sprintf("sqlite path %q: %v", path, err)}
	}
	return connConfig{
		dialect: sqliteDialect,
		target:  abs,
		prepare: func() error {
			if err := os.MkdirAll(filepath.Dir(abs), 0o750); err != nil {
				return fmt.Errorf("create database directory: %w", err)
			}
			return nil
		},
		connect: func() (*sqlx.DB, error) {
			return sqlx.Open(sqliteDialect.driver, abs+"?_journal_mode=WAL&"+params)
		},
		migrationLocker: func() (lock.SessionLocker, error) {
			return &fileLocker{path: abs + sqliteMigrationLockSuffix}, nil
		},
	}, nil
}

// migrate applies pending migrations with goose's Provider (no goose globals).
func (s *Store) migrate(ctx context.Context, migrations fs.FS, newLocker func() (lock.SessionLocker, error)) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return &MigrationError{Err: err}
	}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	if newLocker != nil {
		locker, err := newLocker()
		if err != nil {
			return &MigrationError{Err: err}
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	provider, err := goose.NewProvider(s.dialect.goose, s.db.DB, sub, opts...)
	if err != nil {
		return &MigrationError{Err: err}
	}
	if _, err := provider.Up(ctx); err != nil {
		var partial *goose.PartialError
		if errors.As(err, &partial) && partial.Failed != nil && partial.Failed.Source != nil {
			return &MigrationError{
				Version: partial.Failed.Source.Version,
				Source:  filepath.Base(partial.Failed.Source.Path),
				Err:     partial.Err,
			}
		}
		return &MigrationError{Err: err}
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping %s database: %w", s.dialect.name, err)
	}
	return nil
}

// inTx runs fn in one transaction: committed if fn succeeds, rolled back
// otherwise.
func (s *Store) inTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// micros stores a time as microseconds since the Unix epoch, the unit both
// SQLite and PostgreSQL keep exactly.
func micros(t time.Time) int64 { return t.UnixMicro() }

// fromMicros is the inverse of micros, in UTC.
func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }
