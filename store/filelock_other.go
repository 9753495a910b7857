//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package store

import (
	"context"
	"database/sql"
)

const sqliteMigrationLockSuffix = "-migrations.lock"

// fileLocker does not lock where flock is unavailable: there, processes
// sharing one SQLite file must not start on a fresh database together.
type fileLocker struct{ path string }

func (*fileLocker) SessionLock(context.Context, *sql.Conn) error   { return nil }
func (*fileLocker) SessionUnlock(context.Context, *sql.Conn) error { return nil }
