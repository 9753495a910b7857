package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// SQLite specifics: the connection settings Open promises and the URL forms.

func pragma(t *testing.T, s *Store, name string) string {
	t.Helper()
	var v string
	if err := s.db.QueryRowContext(context.Background(), "PRAGMA "+name).Scan(&v); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return v
}

func TestOpenSQLiteSettings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nested", "dir", "flow.db")
	s := openStore(t, "sqlite://"+path)

	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file: %v (Open must create the directory and file)", err)
	}
	tests := []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"busy_timeout", "5000"},
	}
	for _, tt := range tests {
		t.Run(tt.pragma, func(t *testing.T) {
			// Check more than one pooled connection: each must carry the settings.
			conns := []*Store{s, openStore(t, "sqlite://"+path)}
			for i, st := range conns {
				if got := pragma(t, st, tt.pragma); got != tt.want {
					t.Fatalf("handle %d: PRAGMA %s=%s, want %s", i, tt.pragma, got, tt.want)
				}
			}
		})
	}
	t.Run("ForeignKeyEnforced", func(t *testing.T) {
		_, err := s.db.ExecContext(context.Background(),
			`INSERT INTO events (biz_id, seq, request_id, stage, status, time_of_occurrence, payload,
				accepted_at, state_after, callback) VALUES ('nobody', 1, 'r', 1, 1, '', '{}', 0, 'x', 'queued')`)
		if err == nil || !strings.Contains(err.Error(), "FOREIGN KEY") {
			t.Fatalf("insert of an orphan event err=%v, want a FOREIGN KEY error", err)
		}
	})
	t.Run("Tables", func(t *testing.T) {
		var names []string
		if err := s.db.SelectContext(context.Background(), &names,
			`SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('policies', 'events', 'attempts') ORDER BY name`); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(names, ","); got != "attempts,events,policies" {
			t.Fatalf("tables=%s, want attempts,events,policies", got)
		}
	})
}

func TestOpenSQLiteURLForms(t *testing.T) {
	t.Run("Relative", func(t *testing.T) {
		dir := t.TempDir()
		t.Chdir(dir)
		s := openStore(t, "sqlite://var/flow.db")
		mustRecord(t, s, policy("B1"), event("B1", 1, 1, "pre_insured"))
		// Later connections must open the same file even from elsewhere.
		t.Chdir(t.TempDir())
		if _, err := os.Stat(filepath.Join(dir, "var", "flow.db")); err != nil {
			t.Fatalf("relative database not created under the working directory: %v", err)
		}
		if got := mustPolicy(t, s, "B1").State; got != "pre_insured" {
			t.Fatalf("state=%q, want pre_insured", got)
		}
	})
	t.Run("Absolute", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "abs.db")
		openStore(t, "sqlite://"+path) // path begins with '/': sqlite:///...
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("absolute database: %v", err)
		}
	})
	t.Run("SchemeCaseInsensitive", func(t *testing.T) {
		openStore(t, "SQLite://"+filepath.Join(t.TempDir(), "x.db"))
	})
	t.Run("Memory", func(t *testing.T) {
		s := openStore(t, "sqlite://:memory:")
		mustRecord(t, s, policy("B1"), event("B1", 1, 1, "pre_insured"))
		if err := s.RecordAttempt(context.Background(), attempt("B1", 1, 1, ClassDelivered)); err != nil {
			t.Fatal(err)
		}
		if ev := mustEvents(t, s, "B1")[0]; ev.Callback != "delivered" {
			t.Fatalf("callback=%q, want delivered", ev.Callback)
		}
		if got := pragma(t, s, "foreign_keys"); got != "1" {
			t.Fatalf("foreign_keys=%s, want 1", got)
		}
		// Each :memory: Store is its own database.
		other := openStore(t, "sqlite://:memory:")
		if _, err := other.Policy(context.Background(), "B1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second in-memory store sees B1 (err %v); want its own empty database", err)
		}
	})
}

func TestOpenBadURL(t *testing.T) {
	tests := []struct {
		name       string
		url        string
		wantScheme bool   // an *UnsupportedSchemeError rather than a *URLError
		want       string // in the message
	}{
		{"Empty", "", false, "empty"},
		{"NoScheme", "data/flow.db", false, "no scheme"},
		{"EmptyScheme", "://x.db", false, "no scheme"},
		{"SQLiteNoPath", "sqlite://", false, "no path"},
		{"SQLiteParams", "sqlite://x.db?mode=ro", false, "parameters are not supported"},
		{"MySQL", "mysql://root:s3cret@tcp(db)/flow", true, `"mysql" (supported: sqlite, postgres, postgresql)`},
		{"Typo", "sqlit://x.db", true, `"sqlit" (supported: sqlite, postgres, postgresql)`},
		{"PostgresTypo", "postgress://app:s3cret@db/flow", true, `"postgress"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(context.Background(), tt.url)
			if err == nil {
				_ = s.Close()
				t.Fatalf("Open(%q) succeeded, want an error", tt.url)
			}
			if tt.wantScheme {
				var unsupported *UnsupportedSchemeError
				if !errors.As(err, &unsupported) {
					t.Fatalf("err=%v (%T), want *UnsupportedSchemeError", err, err)
				}
				if got := strings.Join(unsupported.Supported, ","); got != "sqlite,postgres,postgresql" {
					t.Fatalf("supported=%v, want [sqlite postgres postgresql]", unsupported.Supported)
				}
			} else {
				var bad *URLError
				if !errors.As(err, &bad) {
					t.Fatalf("err=%v (%T), want *URLError", err, err)
				}
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

func TestOpenCannotOpen(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "plain-file")
	if err := os.WriteFile(file, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	notDB := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(notDB, []byte(strings.Repeat("this is not a SQLite database ", 200)), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		path   string
		target string
	}{
		{"ParentIsAFile", filepath.Join(file, "flow.db"), filepath.Join(file, "flow.db")},
		{"PathIsADirectory", dir, dir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(context.Background(), "sqlite://"+tt.path)
			var openErr *OpenError
			if !errors.As(err, &openErr) {
				t.Fatalf("err=%v (%T), want *OpenError", err, err)
			}
			if openErr.Target != tt.target || !strings.Contains(err.Error(), "cannot open database "+tt.target) {
				t.Fatalf("err=%q target=%q, want it to name %s", err, openErr.Target, tt.target)
			}
		})
	}
	t.Run("NotADatabase", func(t *testing.T) {
		// The file opens but is no database; the first statement says so.
		_, err := Open(context.Background(), "sqlite://"+notDB)
		if err == nil || !strings.Contains(err.Error(), "not a database") {
			t.Fatalf("err=%v, want one saying the file is not a database", err)
		}
	})
}
