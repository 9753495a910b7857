//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// sqliteMigrationLockSuffix names the lock file beside a SQLite database.
const sqliteMigrationLockSuffix = "-migrations.lock"

// fileLockPoll is how often a process waiting to migrate retries the lock.
const fileLockPoll = 20 * time.Millisecond

// fileLocker is goose's session locker for SQLite, which has no lock that
// outlives a transaction: an exclusive flock on a file beside the database.
// The kernel drops it when its holder exits, so a crashed worker never
// leaves the database locked. The connection goose passes is not needed.
type fileLocker struct {
	path string
	f    *os.File
}

func (l *fileLocker) SessionLock(ctx context.Context, _ *sql.Conn) error {
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("open migration lock: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			l.f = f
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = f.Close()
			return fmt.Errorf("take migration lock %s: %w", l.path, err)
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return fmt.Errorf("wait for migration lock %s: %w", l.path, ctx.Err())
		case <-time.After(fileLockPoll):
		}
	}
}

func (l *fileLocker) SessionUnlock(context.Context, *sql.Conn) error {
	if l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	// Closing the file releases the lock too; unlocking first says so.
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return errors.Join(err, f.Close())
}
