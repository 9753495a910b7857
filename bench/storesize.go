package main

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// storeSample is the worker's store at one moment: its size and the rows
// a set of policies left in it.
type storeSample struct {
	Bytes int64          // the database's logical size (SQLite pages in use; PostgreSQL pg_database_size)
	Rows  map[string]int // table → rows of the policies with the prefix
}

// storeTables are the tables a lifecycle writes to (the call-slot table
// holds only the last second or so, whatever the volume).
var storeTables = []string{"policies", "events", "attempts"}

// sampleStore reads the store at databaseURL (the drivers are the store
// package's: "sqlite3" and pgx's "pgx").
func sampleStore(ctx context.Context, databaseURL, bizPrefix string) (storeSample, error) {
	driver, dsn, sizeQuery := "", "", ""
	switch {
	case strings.HasPrefix(databaseURL, "sqlite://"):
		driver, dsn = "sqlite3", "file:"+strings.TrimPrefix(databaseURL, "sqlite://")+"?mode=ro&_busy_timeout=5000"
		sizeQuery = "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"
	case strings.HasPrefix(databaseURL, "postgres://"), strings.HasPrefix(databaseURL, "postgresql://"):
		driver, dsn = "pgx", databaseURL
		sizeQuery = "SELECT pg_database_size(current_database())"
	default:
		return storeSample{}, fmt.Errorf("store size: unknown database URL scheme")
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return storeSample{}, fmt.Errorf("store size: %w", err)
	}
	defer db.Close()
	s := storeSample{Rows: map[string]int{}}
	if err := db.QueryRowContext(ctx, sizeQuery).Scan(&s.Bytes); err != nil {
		return s, fmt.Errorf("store size: %w", err)
	}
	ph := "?"
	if driver == "pgx" {
		ph = "$1"
	}
	for _, t := range storeTables {
		var n int
		// Table names are this package's constants, never input.
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+t+" WHERE biz_id LIKE "+ph, bizPrefix+"%").Scan(&n); err != nil {
			return s, fmt.Errorf("store rows of %s: %w", t, err)
		}
		s.Rows[t] = n
	}
	return s, nil
}
