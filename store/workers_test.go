package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"
)

// Several workers share one database: these tests open it through more than
// one *Store, as separate worker processes would, and race them.

func testMigrationFailure(t *testing.T, b backend) {
	initial, err := embeddedMigrations.ReadFile("migrations/00001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	migrations := fstest.MapFS{
		"migrations/00001_init.sql": {Data: initial},
		"migrations/00002_broken.sql": {Data: []byte(
			"-- +goose Up\nALTER TABLE policies ADD COLUMN note TEXT;\nALTER TABLE no_such_table ADD COLUMN x TEXT;\n")},
	}
	url := b.newURL(t)
	_, err = open(context.Background(), url, migrations)
	var migErr *MigrationError
	if !errors.As(err, &migErr) {
		t.Fatalf("err=%v (%T), want *MigrationError", err, err)
	}
	if migErr.Version != 2 || migErr.Source != "00002_broken.sql" {
		t.Fatalf("failed migration=%d %q, want 2 00002_broken.sql", migErr.Version, migErr.Source)
	}
	if !strings.Contains(err.Error(), "migration failed at version 2") || !strings.Contains(err.Error(), "no_such_table") {
		t.Fatalf("error %q should name version 2 and the cause", err)
	}

	// Version 1 stays applied and version 2 rolled back as a whole, so the
	// real migrations still open the database and bring it to their latest.
	s := openStore(t, url)
	real, err := embeddedMigrations.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := gooseVersions(t, s); v != int64(len(real)) {
		t.Fatalf("schema version=%d, want %d", v, len(real))
	}
	if _, err := s.db.ExecContext(context.Background(), `SELECT note FROM policies`); err == nil {
		t.Fatal("column from the failed migration exists; its transaction was not rolled back")
	}
}

func testConcurrentOpen(t *testing.T, b backend) {
	url := b.newURL(t)
	const workers = 4
	stores := make([]*Store, workers)
	errs := make([]error, workers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = Open(context.Background(), url)
		})
	}
	close(start)
	wg.Wait()
	for i, s := range stores {
		if s != nil {
			t.Cleanup(func() { _ = s.Close() })
		}
		if errs[i] != nil {
			t.Fatalf("Open by worker %d: %v", i, errs[i])
		}
	}

	// Each migration was applied once, by whichever worker got there first.
	var applied []int64
	if err := stores[0].db.SelectContext(context.Background(), &applied,
		`SELECT version_id FROM goose_db_version WHERE version_id > 0 ORDER BY id`); err != nil {
		t.Fatalf("read goose_db_version: %v", err)
	}
	var want []int64
	for v := int64(1); v <= latestMigration(t); v++ {
		want = append(want, v)
	}
	if !slices.Equal(applied, want) {
		t.Fatalf("applied migrations=%v, want %v (each exactly once)", applied, want)
	}

	// And all of them work on the one database.
	mustRecord(t, stores[0], policy("B1"), event("B1", 1, 1, "pre_insured"))
	for i, s := range stores {
		if got := mustPolicy(t, s, "B1").State; got != "pre_insured" {
			t.Fatalf("worker %d sees state %q, want pre_insured", i, got)
		}
	}
}

// testTwoWorkers races two workers recording the same events and the same
// attempts, as happens when Temporal retries an activity on another worker
// whose first try is still running: every attempt must be recorded once and
// every event's summary must come out as if each had been recorded alone.
func testTwoWorkers(t *testing.T, b backend) {
	ctx := context.Background()
	url := b.newURL(t)
	workers := []*Store{openStore(t, url), openStore(t, url)}

	const (
		goroutines = 12 // six per worker
		seqs       = 3
		tries      = 4 // attempts per event
	)
	bizIDs := []string{"W1", "W2", "W3"}
	events := func(bizID string) []Event {
		out := make([]Event, seqs)
		for i := range out {
			out[i] = event(bizID, int64(i+1), i+1, fmt.Sprintf("state-%d", i+1))
		}
		return out
	}
	// The last try delivers, except for seq 2, whose callback keeps failing.
	delivers := func(seq int64, n int) bool { return n == tries && seq != 2 }
	var attempts []Attempt
	for _, id := range bizIDs {
		for seq := int64(1); seq <= seqs; seq++ {
			for n := 1; n <= tries; n++ {
				class := "retryable"
				if delivers(seq, n) {
					class = ClassDelivered
				}
				a := attempt(id, seq, n, class)
				a.TOPRequestID = fmt.Sprintf("top-%s-%d-%d", id, seq, n)
				attempts = append(attempts, a)
			}
		}
	}

	errs := runConcurrently(goroutines, workers, func(i int, s *Store) error {
		// Goroutines differ in how they record events (all at once, or one
		// call per event from the last) and in the order of their attempts,
		// so that every interleaving has a chance.
		for k := range bizIDs {
			id := bizIDs[(i+k)%len(bizIDs)]
			evs := events(id)
			if i%2 == 0 {
				if err := s.RecordEvents(ctx, policy(id), evs...); err != nil {
					return err
				}
				continue
			}
			for j := len(evs) - 1; j >= 0; j-- {
				if err := s.RecordEvents(ctx, policy(id), evs[j]); err != nil {
					return err
				}
			}
		}
		for k := range attempts {
			j := (i*7 + k) % len(attempts)
			if i%3 == 1 {
				j = len(attempts) - 1 - j
			}
			if err := s.RecordAttempt(ctx, attempts[j]); err != nil {
				return err
			}
		}
		return nil
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("goroutine %d (worker %d): %v", i, i%len(workers)+1, err)
		}
	}

	var rows, distinct int
	if err := workers[0].db.QueryRowContext(ctx,
		`SELECT COUNT(*), COUNT(DISTINCT biz_id || '/' || seq || '/' || attempt) FROM attempts`).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != len(attempts) || distinct != len(attempts) {
		t.Fatalf("attempt rows=%d (distinct %d), want exactly one per attempt: %d", rows, distinct, len(attempts))
	}
	for w, s := range workers {
		for _, id := range bizIDs {
			var want []Attempt
			for _, a := range attempts {
				if a.BizID == id {
					a.StartedAt = a.StartedAt.Truncate(time.Microsecond)
					want = append(want, a)
				}
			}
			if got := mustAttempts(t, s, id); !slices.Equal(got, want) {
				t.Fatalf("worker %d: attempts of %s=%+v, want %+v", w+1, id, got, want)
			}
			evs := mustEvents(t, s, id)
			if len(evs) != seqs {
				t.Fatalf("worker %d: %s has %d events, want %d", w+1, id, len(evs), seqs)
			}
			for _, ev := range evs {
				last := attempt(id, ev.Seq, tries, "retryable")
				wantCallback, wantClass, wantError := "retrying", "retryable", "busy 4"
				var wantDelivered *time.Time
				if delivers(ev.Seq, tries) {
					wantCallback, wantClass, wantError = "delivered", ClassDelivered, ""
					at := last.StartedAt.Add(last.Duration).Truncate(time.Microsecond)
					wantDelivered = &at
				}
				if ev.Attempts != tries || ev.Callback != wantCallback || ev.LastClass != wantClass || ev.LastError != wantError ||
					(ev.DeliveredAt == nil) != (wantDelivered == nil) ||
					(wantDelivered != nil && !ev.DeliveredAt.Equal(*wantDelivered)) {
					t.Fatalf("worker %d: %s seq %d=%+v, want attempts %d, callback %s, class %s, error %q, delivered_at %v",
						w+1, id, ev.Seq, ev, tries, wantCallback, wantClass, wantError, wantDelivered)
				}
			}
			if p := mustPolicy(t, s, id); p.LastSeq != seqs || p.State != fmt.Sprintf("state-%d", seqs) {
				t.Fatalf("worker %d: policy %s=%+v, want seq %d state-%d", w+1, id, p, seqs, seqs)
			}
		}
	}
}

// testTwoWorkersStartAndFinish races two workers through the attempts of
// several events as the activity makes them: each attempt starts
// (StartAttempt) and then records its outcome, except attempt 2, whose worker
// dies mid-call, and attempt 3, which no worker runs. Some goroutines record
// an outcome only after the next attempt started, as a slow worker does.
// Whatever the interleaving, each attempt ends with exactly one row: its
// outcome, started for attempt 2, lost for attempt 3.
func testTwoWorkersStartAndFinish(t *testing.T, b backend) {
	ctx := context.Background()
	url := b.newURL(t)
	workers := []*Store{openStore(t, url), openStore(t, url)}
	bizIDs := []string{"S1", "S2"}
	const seqs, tries = 3, 5
	for _, id := range bizIDs {
		var evs []Event
		for seq := 1; seq <= seqs; seq++ {
			evs = append(evs, event(id, int64(seq), seq, fmt.Sprintf("state-%d", seq)))
		}
		mustRecord(t, workers[0], policy(id), evs...)
	}
	// The last try delivers, except for seq 2, whose callback keeps failing.
	outcome := func(id string, seq int64, n int) (Attempt, bool) {
		switch {
		case n == 2 || n == 3:
			return Attempt{}, false
		case n == tries && seq != 2:
			return attempt(id, seq, n, ClassDelivered), true
		}
		return attempt(id, seq, n, "retryable"), true
	}
	type target struct {
		id  string
		seq int64
	}
	var targets []target
	for _, id := range bizIDs {
		for seq := int64(1); seq <= seqs; seq++ {
			targets = append(targets, target{id, seq})
		}
	}

	errs := runConcurrently(12, workers, func(i int, s *Store) error {
		lag := i%2 == 1
		for k := range targets {
			tg := targets[(i*5+k)%len(targets)]
			var pending *Attempt
			for n := 1; n <= tries; n++ {
				if n != 3 {
					if err := s.StartAttempt(ctx, tg.id, tg.seq, n, startedRow(tg.id, tg.seq, n).StartedAt); err != nil {
						return err
					}
				}
				if pending != nil {
					if err := s.RecordAttempt(ctx, *pending); err != nil {
						return err
					}
					pending = nil
				}
				a, ok := outcome(tg.id, tg.seq, n)
				if !ok {
					continue
				}
				if lag && n < tries {
					pending = &a
					continue
				}
				if err := s.RecordAttempt(ctx, a); err != nil {
					return err
				}
			}
		}
		return nil
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("goroutine %d (worker %d): %v", i, i%len(workers)+1, err)
		}
	}

	for w, s := range workers {
		for _, id := range bizIDs {
			var want []Attempt
			for seq := int64(1); seq <= seqs; seq++ {
				for n := 1; n <= tries; n++ {
					a, ok := outcome(id, seq, n)
					switch {
					case ok:
					case n == 2:
						a = startedRow(id, seq, n)
					default:
						a = lostRow(id, seq, n, startedRow(id, seq, n+1).StartedAt)
					}
					a.StartedAt = a.StartedAt.Truncate(time.Microsecond)
					want = append(want, a)
				}
			}
			if got := mustAttempts(t, s, id); !slices.Equal(got, want) {
				t.Fatalf("worker %d: attempts of %s:\n got %+v\nwant %+v", w+1, id, got, want)
			}
			for _, ev := range mustEvents(t, s, id) {
				last, _ := outcome(id, ev.Seq, tries)
				wantCallback := "retrying"
				if last.Class == ClassDelivered {
					wantCallback = "delivered"
				}
				if ev.Attempts != tries || ev.Callback != wantCallback || ev.LastClass != last.Class || ev.LastError != attemptError(last) ||
					(ev.DeliveredAt != nil) != (last.Class == ClassDelivered) {
					t.Fatalf("worker %d: %s seq %d=%+v, want %d attempts, callback %s, attempt %d's class %s",
						w+1, id, ev.Seq, ev, tries, wantCallback, tries, last.Class)
				}
			}
		}
	}
}

// testSetCallbackRacesRecordEvents has one worker re-record a policy's events
// (a retried activity) while the other moves their callbacks along. Both
// touch the policy row and the event rows; taken in different orders, the
// locks would deadlock and PostgreSQL would abort one of the transactions.
func testSetCallbackRacesRecordEvents(t *testing.T, b backend) {
	ctx := context.Background()
	url := b.newURL(t)
	workers := []*Store{openStore(t, url), openStore(t, url)}
	evs := []Event{event("B1", 1, 1, "pre_insured"), event("B1", 2, 2, "underwritten"), event("B1", 3, 3, "insured")}
	mustRecord(t, workers[0], policy("B1"), evs...)

	const rounds = 15
	states := []string{"pending", "retrying"}
	errs := runConcurrently(8, workers, func(i int, s *Store) error {
		for r := range rounds {
			var err error
			if i%2 == 0 {
				err = s.RecordEvents(ctx, policy("B1"), evs...)
			} else {
				err = s.SetCallback(ctx, "B1", int64(1+r%len(evs)), "sending", states[(i/2+r)%len(states)])
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("goroutine %d: %v", i, err)
		}
	}
	got := mustEvents(t, workers[1], "B1")
	if len(got) != len(evs) {
		t.Fatalf("events=%d, want %d", len(got), len(evs))
	}
	for _, ev := range got {
		if ev.Callback != "sending" {
			t.Fatalf("seq %d callback=%q, want sending", ev.Seq, ev.Callback)
		}
	}
	if p := mustPolicy(t, workers[0], "B1"); !slices.Contains(states, p.CallbackState) || p.LastSeq != 3 {
		t.Fatalf("policy=%+v, want callback_state one of %v and seq 3", p, states)
	}
}
