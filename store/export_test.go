package store

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// testExportEvents checks the export's order, filters, keyset cursor and
// TOP request id on every backend.
func testExportEvents(t *testing.T, b backend) {
	ctx := context.Background()
	s := newStore(t, b)
	// B1 and A1 accept their first events at the same instant: the order
	// breaks the tie by biz_id, then seq.
	a1 := []Event{event("A1", 1, 1, "pre_insured"), event("A1", 2, 2, "underwritten")}
	b1 := []Event{event("B1", 1, 1, "pre_insured")}
	if err := s.RecordEvents(ctx, policy("B1"), b1...); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordEvents(ctx, policy("A1"), a1...); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordAttempt(ctx, Attempt{BizID: "A1", Seq: 1, Attempt: 1, StartedAt: clock, Class: "retryable", TOPRequestID: "top-1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordAttempt(ctx, Attempt{BizID: "A1", Seq: 1, Attempt: 2, StartedAt: clock, Class: ClassDelivered, TOPRequestID: "top-2"}); err != nil {
		t.Fatal(err)
	}
	collect := func(f ExportFilter) []string {
		t.Helper()
		var got []string
		if err := s.ExportEvents(ctx, f, func(e ExportedEvent) error {
			got = append(got, fmt.Sprintf("%s/%d/%s/%d/%s", e.BizID, e.Seq, e.Callback, e.Attempts, e.TOPRequestID))
			return nil
		}); err != nil {
			t.Fatalf("ExportEvents(%+v): %v", f, err)
		}
		return got
	}
	check := func(name string, f ExportFilter, want ...string) {
		t.Helper()
		if got := collect(f); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}
	check("all", ExportFilter{}, "A1/1/delivered/2/top-2", "B1/1/queued/0/", "A1/2/queued/0/")
	check("by callback", ExportFilter{Callback: "delivered"}, "A1/1/delivered/2/top-2")
	check("since", ExportFilter{Since: clock.Add(2 * time.Minute)}, "A1/2/queued/0/")
	check("until", ExportFilter{Until: clock.Add(2 * time.Minute)}, "A1/1/delivered/2/top-2", "B1/1/queued/0/")
	check("limit", ExportFilter{Limit: 1}, "A1/1/delivered/2/top-2")
	after := ExportCursor{AcceptedAt: clock.Add(time.Minute), BizID: "A1", Seq: 1}
	check("after the first", ExportFilter{After: &after}, "B1/1/queued/0/", "A1/2/queued/0/")
	after.BizID = "B1"
	check("after the tie", ExportFilter{After: &after}, "A1/2/queued/0/")

	var delivered ExportedEvent
	_ = s.ExportEvents(ctx, ExportFilter{Callback: "delivered"}, func(e ExportedEvent) error { delivered = e; return nil })
	if delivered.DeliveredAt == nil || delivered.RequestID != "req-A1-1" || !delivered.AcceptedAt.Equal(clock.Add(time.Minute)) {
		t.Errorf("delivered event=%+v, want delivered_at, its request id and accepted_at", delivered)
	}

	var invalid *InvalidError
	if err := s.ExportEvents(ctx, ExportFilter{Callback: "sent"}, func(ExportedEvent) error { return nil }); !errors.As(err, &invalid) {
		t.Errorf("unknown callback: err=%v, want *InvalidError", err)
	}
	stop := errors.New("stop")
	n := 0
	if err := s.ExportEvents(ctx, ExportFilter{}, func(ExportedEvent) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("fn's error: err=%v after %d rows, want stop after 1", err, n)
	}
}

// TestExportEventsConstantMemory exports 200,000 generated events from
// SQLite and reports the heap: the export reads row by row, so the peak
// heap during it stays near where it started, while holding the rows would
// take tens of megabytes. The figures are printed (go test -v -run
// ConstantMemory ./store); the bound asserted is generous, a tenth of what
// keeping the rows would cost.
func TestExportEventsConstantMemory(t *testing.T) {
	const n = 200_000
	ctx := context.Background()
	s := openStore(t, backends(t)[0].newURL(t))
	insertStart := time.Now()
	fillEvents(t, s, n)
	t.Logf("inserted %d events in %v", n, time.Since(insertStart).Round(time.Millisecond))

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	peak := before.HeapAlloc
	count := 0
	start := time.Now()
	err := s.ExportEvents(ctx, ExportFilter{}, func(e ExportedEvent) error {
		count++
		if count%1000 == 0 {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapAlloc)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("ExportEvents: %v", err)
	}
	elapsed := time.Since(start)
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	const mib = 1 << 20
	t.Logf("exported %d events in %v (%.0f rows/s); heap before %.1f MiB, peak %.1f MiB (+%.1f MiB), total allocated %.0f MiB",
		count, elapsed.Round(time.Millisecond), float64(count)/elapsed.Seconds(),
		float64(before.HeapAlloc)/mib, float64(peak)/mib, float64(peak-before.HeapAlloc)/mib,
		float64(after.TotalAlloc-before.TotalAlloc)/mib)
	if count != n {
		t.Fatalf("exported %d events, want %d", count, n)
	}
	if grew := peak - before.HeapAlloc; grew > 32*mib {
		t.Fatalf("heap grew by %.1f MiB during the export, want it bounded (rows are not to be held)", float64(grew)/mib)
	}
}

// fillEvents writes n events (4 per policy) straight into the tables in one
// transaction: the export test needs volume, not RecordEvents' checks.
func fillEvents(t *testing.T, s *Store, n int) {
	t.Helper()
	ctx := context.Background()
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	pol, err := tx.PreparexContext(ctx, s.db.Rebind(`INSERT INTO policies (biz_id, state, insurance_type, last_seq, created_at, updated_at) VALUES (?, 'insured', 1, 4, ?, ?)`))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := tx.PreparexContext(ctx, s.db.Rebind(`INSERT INTO events (biz_id, seq, request_id, stage, status, time_of_occurrence, payload,
		accepted_at, state_after, callback, attempts, delivered_at) VALUES (?, ?, ?, ?, 1, '2025-04-08 09:55:00', '{}', ?, 'insured', 'delivered', 1, ?)`))
	if err != nil {
		t.Fatal(err)
	}
	base := micros(clock)
	for i := 0; i < n; i++ {
		biz := fmt.Sprintf("EXP%08d", i/4)
		seq := int64(i%4 + 1)
		if seq == 1 {
			if _, err := pol.ExecContext(ctx, biz, base, base); err != nil {
				t.Fatal(err)
			}
		}
		at := base + int64(i)*1000
		if _, err := ev.ExecContext(ctx, biz, seq, fmt.Sprintf("r-%s-%d", biz, seq), seq, at, at+500); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}
