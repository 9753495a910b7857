package store

import (
	"fmt"
	"strings"
)

// URLError is returned by Open when DATABASE_URL is malformed. Reason never
// quotes a whole URL, which may hold a password.
type URLError struct {
	Reason string
}

func (e *URLError) Error() string { return "bad database URL: " + e.Reason }

// UnsupportedSchemeError is returned by Open for a DATABASE_URL whose scheme
// names a database the store does not run on.
type UnsupportedSchemeError struct {
	Scheme    string
	Supported []string
}

func (e *UnsupportedSchemeError) Error() string {
	return fmt.Sprintf("unsupported database URL scheme %q (supported: %s)", e.Scheme, strings.Join(e.Supported, ", "))
}

// OpenError is returned by Open when the database cannot be reached or
// created. Target names the database (a file path for SQLite).
type OpenError struct {
	Target string
	Err    error
}

func (e *OpenError) Error() string {
	return fmt.Sprintf("cannot open database %s: %v", e.Target, e.Err)
}

func (e *OpenError) Unwrap() error { return e.Err }

// MigrationError is returned by Open when the schema cannot be brought up to
// date. Version and Source name the migration that failed; they are zero when
// goose failed before running any migration.
type MigrationError struct {
	Version int64
	Source  string
	Err     error
}

func (e *MigrationError) Error() string {
	if e.Version == 0 {
		return fmt.Sprintf("migrate database: %v", e.Err)
	}
	return fmt.Sprintf("migration failed at version %d (%s): %v", e.Version, e.Source, e.Err)
}

func (e *MigrationError) Unwrap() error { return e.Err }

// InvalidError is returned when a caller passes a record the store must not
// write: Field names the offending field, Problem says what is wrong with it.
type InvalidError struct {
	Field   string
	Problem string
}

func (e *InvalidError) Error() string { return fmt.Sprintf("invalid %s: %s", e.Field, e.Problem) }

// EventConflictError is returned by RecordEvents when an event would reuse a
// request id already recorded under another seq of the same policy, or a seq
// already holding another request id. Recording the very same (seq,
// request id) again is not a conflict: it is the idempotent no-op.
type EventConflictError struct {
	BizID             string
	Seq               int64  // the seq being recorded
	RequestID         string // the request id being recorded
	ExistingSeq       int64  // the seq already recorded for the clash
	ExistingRequestID string // the request id already recorded for the clash
}

func (e *EventConflictError) Error() string {
	// BizID is left out: RecordEvents wraps this error with it.
	if e.ExistingRequestID == e.RequestID {
		return fmt.Sprintf("request_id %q is already recorded as seq %d, cannot record it again as seq %d",
			e.RequestID, e.ExistingSeq, e.Seq)
	}
	return fmt.Sprintf("seq %d already holds request_id %q, cannot record request_id %q under it",
		e.Seq, e.ExistingRequestID, e.RequestID)
}
