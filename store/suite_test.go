package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// backend makes fresh, empty databases of one kind for the suite. The suite
// below uses nothing but DATABASE_URLs and the exported API (plus portable
// SQL), so another database joins it by adding a backend here.
type backend struct {
	name string
	// skip, if set, says why this backend cannot run here; its tests skip
	// with it.
	skip string
	// newURL returns the DATABASE_URL of a fresh, empty database that lives
	// until the test ends. Opening it twice gives two handles on one database.
	newURL func(t *testing.T) string
}

func backends(t *testing.T) []backend {
	t.Helper()
	return []backend{
		{
			name: "sqlite",
			newURL: func(t *testing.T) string {
				return "sqlite://" + filepath.Join(t.TempDir(), "data", "insuranceflow.db")
			},
		},
		postgresBackend(t),
	}
}

// forEachBackend runs fn as one subtest per backend, named after it. The
// backends run in parallel: their databases have nothing in common.
func forEachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	t.Helper()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			if b.skip != "" {
				t.Skip(b.skip)
			}
			t.Parallel()
			fn(t, b)
		})
	}
}

// TestStore runs the whole suite against every backend.
func TestStore(t *testing.T) {
	forEachBackend(t, runSuite)
}

func runSuite(t *testing.T, b backend) {
	t.Run("OpenMigratesAndReopenIsNoop", func(t *testing.T) { testMigrations(t, b) })
	t.Run("ConcurrentOpenOnFreshDatabase", func(t *testing.T) { testConcurrentOpen(t, b) })
	t.Run("MigrationFailure", func(t *testing.T) { testMigrationFailure(t, b) })
	t.Run("RecordEventsIdempotent", func(t *testing.T) { testRecordEventsIdempotent(t, b) })
	t.Run("PolicyMovesForwardOnly", func(t *testing.T) { testPolicyForwardOnly(t, b) })
	t.Run("EventConflicts", func(t *testing.T) { testEventConflicts(t, b) })
	t.Run("RecordEventsRejectsBadInput", func(t *testing.T) { testRecordEventsInvalid(t, b) })
	t.Run("TextEveryBackendStores", func(t *testing.T) { testStorableText(t, b) })
	t.Run("RecordAttemptIdempotent", func(t *testing.T) { testRecordAttemptIdempotent(t, b) })
	t.Run("RecordAttemptOutOfOrder", func(t *testing.T) { testRecordAttemptOutOfOrder(t, b) })
	t.Run("RecordAttemptDelivered", func(t *testing.T) { testRecordAttemptDelivered(t, b) })
	t.Run("RecordAttemptUnknownEvent", func(t *testing.T) { testRecordAttemptUnknownEvent(t, b) })
	t.Run("RecordAttemptClasses", func(t *testing.T) { testRecordAttemptClasses(t, b) })
	t.Run("StartAttemptThenOutcome", func(t *testing.T) { testStartAttemptThenOutcome(t, b) })
	t.Run("StartAttemptRecordsLostAttempts", func(t *testing.T) { testStartAttemptRecordsLost(t, b) })
	t.Run("StartAttemptNeverReplacesAnOutcome", func(t *testing.T) { testStartAttemptKeepsOutcomes(t, b) })
	t.Run("StartAttemptRejectsBadInput", func(t *testing.T) { testStartAttemptInvalid(t, b) })
	t.Run("SetCallback", func(t *testing.T) { testSetCallback(t, b) })
	t.Run("PolicyNotFound", func(t *testing.T) { testPolicyNotFound(t, b) })
	t.Run("ListPolicies", func(t *testing.T) { testListPolicies(t, b) })
	t.Run("ListPoliciesByteOrder", func(t *testing.T) { testListPoliciesByteOrder(t, b) })
	t.Run("ExportEvents", func(t *testing.T) { testExportEvents(t, b) })
	t.Run("ConcurrentRecordAttempt", func(t *testing.T) { testConcurrentRecordAttempt(t, b) })
	t.Run("ConcurrentRecordEvents", func(t *testing.T) { testConcurrentRecordEvents(t, b) })
	t.Run("TwoWorkersRecordEachAttemptOnce", func(t *testing.T) { testTwoWorkers(t, b) })
	t.Run("TwoWorkersStartAndFinishAttempts", func(t *testing.T) { testTwoWorkersStartAndFinish(t, b) })
	t.Run("TwoWorkersSetCallbackWhileRecording", func(t *testing.T) { testSetCallbackRacesRecordEvents(t, b) })
	t.Run("LostNotifications", func(t *testing.T) { testLostNotifications(t, b) })
}

// clock is the fixed time the suite's stores use for defaults.
var clock = time.Date(2025, 3, 14, 9, 26, 53, 589793000, time.UTC)

func openStore(t *testing.T, url string) *Store {
	t.Helper()
	s, err := Open(context.Background(), url)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	s.now = func() time.Time { return clock }
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func newStore(t *testing.T, b backend) *Store {
	t.Helper()
	return openStore(t, b.newURL(t))
}

func policy(bizID string) Policy {
	return Policy{BizID: bizID, State: "new", InsuranceType: 2}
}

// event builds event seq of bizID with a request id derived from both.
func event(bizID string, seq int64, stage int, stateAfter string) Event {
	return Event{
		BizID:            bizID,
		Seq:              seq,
		RequestID:        fmt.Sprintf("req-%s-%d", bizID, seq),
		Stage:            stage,
		Status:           1,
		TimeOfOccurrence: fmt.Sprintf("2025-03-0%d 10:00:00", seq),
		Payload:          fmt.Sprintf(`{"biz_id":%q,"stage":%d,"status":1}`, bizID, stage),
		AcceptedAt:       clock.Add(time.Duration(seq) * time.Minute),
		StateAfter:       stateAfter,
	}
}

func mustRecord(t *testing.T, s *Store, p Policy, events ...Event) {
	t.Helper()
	if err := s.RecordEvents(context.Background(), p, events...); err != nil {
		t.Fatalf("RecordEvents: %v", err)
	}
}

func mustPolicy(t *testing.T, s *Store, bizID string) Policy {
	t.Helper()
	p, err := s.Policy(context.Background(), bizID)
	if err != nil {
		t.Fatalf("Policy(%q): %v", bizID, err)
	}
	return p
}

func mustEvents(t *testing.T, s *Store, bizID string) []Event {
	t.Helper()
	evs, err := s.Events(context.Background(), bizID)
	if err != nil {
		t.Fatalf("Events(%q): %v", bizID, err)
	}
	return evs
}

func mustAttempts(t *testing.T, s *Store, bizID string) []Attempt {
	t.Helper()
	as, err := s.Attempts(context.Background(), bizID)
	if err != nil {
		t.Fatalf("Attempts(%q): %v", bizID, err)
	}
	return as
}

// gooseVersions reads goose's bookkeeping with portable SQL.
func gooseVersions(t *testing.T, s *Store) (maxVersion int64, rows int) {
	t.Helper()
	err := s.db.QueryRowContext(context.Background(),
		`SELECT COALESCE(MAX(version_id), 0), COUNT(*) FROM goose_db_version`).Scan(&maxVersion, &rows)
	if err != nil {
		t.Fatalf("read goose_db_version: %v", err)
	}
	return maxVersion, rows
}

func latestMigration(t *testing.T) int64 {
	t.Helper()
	entries, err := embeddedMigrations.ReadDir("migrations")
	if err != nil || len(entries) == 0 {
		t.Fatalf("embedded migrations: %v (%d files)", err, len(entries))
	}
	var v int64
	name := entries[len(entries)-1].Name()
	if _, err := fmt.Sscanf(name, "%d_", &v); err != nil {
		t.Fatalf("migration name %q: %v", name, err)
	}
	return v
}

func testMigrations(t *testing.T, b backend) {
	url := b.newURL(t)
	s := openStore(t, url)
	want := latestMigration(t)
	v1, rows1 := gooseVersions(t, s)
	if v1 != want {
		t.Fatalf("schema version after Open=%d, want %d", v1, want)
	}
	mustRecord(t, s, policy("B1"), event("B1", 1, 1, "pre_insured"))

	s2 := openStore(t, url)
	v2, rows2 := gooseVersions(t, s2)
	if v2 != v1 || rows2 != rows1 {
		t.Fatalf("re-Open changed goose_db_version: version %d→%d, rows %d→%d", v1, v2, rows1, rows2)
	}
	if got := mustPolicy(t, s2, "B1").State; got != "pre_insured" {
		t.Fatalf("state after re-Open=%q, want %q", got, "pre_insured")
	}
	if err := s2.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testRecordEventsIdempotent(t *testing.T, b backend) {
	s := newStore(t, b)
	ctx := context.Background()
	p := policy("B1")
	p.CallbackState = "pending"
	e1 := event("B1", 1, 1, "pre_insured")
	e2 := event("B1", 2, 2, "underwritten")
	e2.EndorsementsAfter = 0
	for i := range 2 {
		if err := s.RecordEvents(ctx, p, e1, e2); err != nil {
			t.Fatalf("RecordEvents call %d: %v", i+1, err)
		}
	}
	evs := mustEvents(t, s, "B1")
	if len(evs) != 2 {
		t.Fatalf("events=%d, want 2", len(evs))
	}
	for i, want := range []Event{e1, e2} {
		got := evs[i]
		want.Callback = "queued"
		if got.Seq != want.Seq || got.RequestID != want.RequestID || got.Payload != want.Payload ||
			got.Stage != want.Stage || got.Status != want.Status || got.TimeOfOccurrence != want.TimeOfOccurrence ||
			got.StateAfter != want.StateAfter || got.Callback != want.Callback || got.Attempts != 0 ||
			got.DeliveredAt != nil || !got.AcceptedAt.Equal(want.AcceptedAt) {
			t.Fatalf("event %d=%+v, want %+v", i, got, want)
		}
		if got.AcceptedAt.Location() != time.UTC {
			t.Fatalf("event %d accepted_at location=%v, want UTC", i, got.AcceptedAt.Location())
		}
	}
	got := mustPolicy(t, s, "B1")
	want := Policy{
		BizID: "B1", State: "underwritten", InsuranceType: 2, LastSeq: 2,
		LastOccurredAt: e2.TimeOfOccurrence, CallbackState: "pending",
		CreatedAt: clock.Truncate(time.Microsecond), UpdatedAt: clock.Truncate(time.Microsecond),
	}
	if got != want {
		t.Fatalf("policy=%+v, want %+v", got, want)
	}
}

func testPolicyForwardOnly(t *testing.T, b backend) {
	s := newStore(t, b)
	e2 := event("B1", 2, 3, "insured")
	e2.EndorsementsAfter = 1
	p := policy("B1")
	p.PolicyNumber = "P-100"
	mustRecord(t, s, p, e2)

	// A late seq 1, with a newer clock and other fields, must not roll back.
	later := clock.Add(time.Hour)
	s.now = func() time.Time { return later }
	stale := Policy{BizID: "B1", State: "ignored", InsuranceType: 1, PolicyNumber: "P-OLD", CallbackState: "parked"}
	mustRecord(t, s, stale, event("B1", 1, 1, "pre_insured"))

	got := mustPolicy(t, s, "B1")
	if got.State != "insured" || got.LastSeq != 2 || got.Endorsements != 1 || got.PolicyNumber != "P-100" ||
		got.InsuranceType != 2 || got.LastOccurredAt != e2.TimeOfOccurrence || got.CallbackState != "" ||
		!got.UpdatedAt.Equal(clock.Truncate(time.Microsecond)) {
		t.Fatalf("policy after late seq 1=%+v, want state insured, seq 2, endorsements 1, P-100, type 2, updated_at unchanged", got)
	}
	if evs := mustEvents(t, s, "B1"); len(evs) != 2 || evs[0].Seq != 1 || evs[1].Seq != 2 {
		t.Fatalf("events=%+v, want seqs 1 and 2 in order", evs)
	}

	// seq 3 moves it on; an empty policy number keeps the known one.
	mustRecord(t, s, Policy{BizID: "B1", InsuranceType: 2}, event("B1", 3, 4, "cancelled"))
	got = mustPolicy(t, s, "B1")
	if got.State != "cancelled" || got.LastSeq != 3 || got.PolicyNumber != "P-100" || got.Endorsements != 0 ||
		!got.UpdatedAt.Equal(later.Truncate(time.Microsecond)) || !got.CreatedAt.Equal(clock.Truncate(time.Microsecond)) {
		t.Fatalf("policy after seq 3=%+v, want cancelled, seq 3, P-100, endorsements 0, updated later, created unchanged", got)
	}

	// A policy row given a higher LastSeq than its events keeps its own fields.
	mustRecord(t, s, Policy{BizID: "B1", State: "reopened", InsuranceType: 2, LastSeq: 9}, event("B1", 4, 5, "x"))
	if got := mustPolicy(t, s, "B1"); got.State != "reopened" || got.LastSeq != 9 {
		t.Fatalf("policy=%+v, want state reopened, seq 9", got)
	}
}

func testEventConflicts(t *testing.T, b backend) {
	s := newStore(t, b)
	ctx := context.Background()
	mustRecord(t, s, policy("B1"), event("B1", 1, 1, "pre_insured"))

	t.Run("RequestIDUnderOtherSeq", func(t *testing.T) {
		e := event("B1", 2, 2, "underwritten")
		e.RequestID = "req-B1-1"
		err := s.RecordEvents(ctx, policy("B1"), e)
		var conflict *EventConflictError
		if !errors.As(err, &conflict) {
			t.Fatalf("err=%v, want *EventConflictError", err)
		}
		if conflict.Seq != 2 || conflict.ExistingSeq != 1 || conflict.RequestID != "req-B1-1" {
			t.Fatalf("conflict=%+v, want seq 2 clashing with seq 1 on req-B1-1", conflict)
		}
		for _, want := range []string{"req-B1-1", "seq 1", "seq 2", `"B1"`} {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not mention %q", err, want)
			}
		}
	})
	t.Run("SeqWithOtherRequestID", func(t *testing.T) {
		e := event("B1", 1, 1, "pre_insured")
		e.RequestID = "req-other"
		err := s.RecordEvents(ctx, policy("B1"), e)
		var conflict *EventConflictError
		if !errors.As(err, &conflict) {
			t.Fatalf("err=%v, want *EventConflictError", err)
		}
		if conflict.ExistingRequestID != "req-B1-1" || conflict.RequestID != "req-other" || conflict.Seq != 1 {
			t.Fatalf("conflict=%+v, want seq 1 holding req-B1-1", conflict)
		}
	})
	t.Run("ConflictRecordsNothing", func(t *testing.T) {
		ok := event("B1", 2, 2, "underwritten")
		bad := event("B1", 3, 3, "insured")
		bad.RequestID = "req-B1-1"
		if err := s.RecordEvents(ctx, policy("B1"), ok, bad); err == nil {
			t.Fatal("RecordEvents with a conflicting event succeeded")
		}
		if evs := mustEvents(t, s, "B1"); len(evs) != 1 {
			t.Fatalf("events=%d after a failed call, want 1 (the transaction must roll back)", len(evs))
		}
		if got := mustPolicy(t, s, "B1"); got.LastSeq != 1 || got.State != "pre_insured" {
			t.Fatalf("policy=%+v after a failed call, want seq 1 pre_insured", got)
		}
	})
	t.Run("SameRequestIDInOtherPolicy", func(t *testing.T) {
		e := event("B2", 1, 1, "pre_insured")
		e.RequestID = "req-B1-1"
		mustRecord(t, s, policy("B2"), e)
	})
}

func testRecordEventsInvalid(t *testing.T, b backend) {
	s := newStore(t, b)
	tests := []struct {
		name   string
		policy Policy
		event  Event
		field  string
	}{
		{"EmptyBizID", Policy{State: "new"}, event("", 1, 1, "pre_insured"), "policy biz_id"},
		{"OtherBizID", policy("B1"), event("B2", 1, 1, "pre_insured"), "event biz_id"},
		{"ZeroSeq", policy("B1"), event("B1", 0, 1, "pre_insured"), "event seq"},
		{"NoRequestID", policy("B1"), func() Event { e := event("B1", 1, 1, "x"); e.RequestID = ""; return e }(), "event seq 1 request_id"},
		{"NoStateAfter", policy("B1"), event("B1", 1, 1, ""), "event seq 1 state_after"},
		{"BadPayload", policy("B1"), func() Event { e := event("B1", 1, 1, "x"); e.Payload = `{"name":"Zhang`; return e }(), "event seq 1 payload"},
		{"BadCallback", policy("B1"), func() Event { e := event("B1", 1, 1, "x"); e.Callback = "lost"; return e }(), "event seq 1 callback"},
		{"BadPolicyCallbackState", Policy{BizID: "B1", CallbackState: "busy"}, event("B1", 1, 1, "x"), "policy callback_state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.RecordEvents(context.Background(), tt.policy, tt.event)
			var invalid *InvalidError
			if !errors.As(err, &invalid) {
				t.Fatalf("err=%v, want *InvalidError", err)
			}
			if invalid.Field != tt.field {
				t.Fatalf("field=%q, want %q (err %v)", invalid.Field, tt.field, err)
			}
			if strings.Contains(err.Error(), "Zhang") {
				t.Fatalf("error %q quotes the payload", err)
			}
		})
	}
	t.Run("PolicyWithoutStateOrEvents", func(t *testing.T) {
		err := s.RecordEvents(context.Background(), Policy{BizID: "B9"})
		var invalid *InvalidError
		if !errors.As(err, &invalid) || invalid.Field != "policy state" {
			t.Fatalf("err=%v, want *InvalidError on policy state", err)
		}
	})
	if ps, err := s.ListPolicies(context.Background(), ListFilter{}); err != nil || len(ps) != 0 {
		t.Fatalf("policies after rejected calls=%v (err %v), want none", ps, err)
	}
}

func attempt(bizID string, seq int64, n int, class string) Attempt {
	return Attempt{
		BizID: bizID, Seq: seq, Attempt: n,
		StartedAt:  clock.Add(time.Duration(n) * time.Minute),
		Duration:   1500 * time.Microsecond,
		Class:      class,
		HTTPStatus: 200,
		Code:       15, SubCode: "isv.busy", Msg: "Remote service error", SubMsg: fmt.Sprintf("busy %d", n),
		TOPRequestID: fmt.Sprintf("top-%d", n),
	}
}

func testRecordAttemptIdempotent(t *testing.T, b backend) {
	s := newStore(t, b)
	ctx := context.Background()
	mustRecord(t, s, policy("B1"), event("B1", 1, 1, "pre_insured"))
	a := attempt("B1", 1, 1, "retryable")
	for i := range 2 {
		if err := s.RecordAttempt(ctx, a); err != nil {
			t.Fatalf("RecordAttempt call %d: %v", i+1, err)
		}
	}
	as := mustAttempts(t, s, "B1")
	if len(as) != 1 {
		t.Fatalf("attempts=%d, want 1", len(as))
	}
	want := a
	want.StartedAt = a.StartedAt.Truncate(time.Microsecond)
	if as[0] != want {
		t.Fatalf("attempt=%+v, want %+v", as[0], want)
	}
	ev := mustEvents(t, s, "B1")[0]
	if ev.Attempts != 1 || ev.LastClass != "retryable" || ev.LastError != "busy 1" || ev.Callback != "retrying" || ev.DeliveredAt != nil {
		t.Fatalf("event=%+v, want attempts 1, class retryable, error %q, callback retrying, not delivered", ev, "busy 1")
	}
	if err := s.RecordAttempt(ctx, attempt("B1", 1, 2, "rate_limited")); err != nil {
		t.Fatalf("RecordAttempt 2: %v", err)
	}
	ev = mustEvents(t, s, "B1")[0]
	if ev.Attempts != 2 || ev.LastClass != "rate_limited" || ev.LastError != "busy 2" {
		t.Fatalf("event=%+v, want attempts 2, class rate_limited, error %q", ev, "busy 2")
	}
	if as := mustAttempts(t, s, "B1"); len(as) != 2 || as[0].Attempt != 1 || as[1].Attempt != 2 {
		t.Fatalf("attempts=%+v, want attempts 1 and 2 in order", as)
	}
}

func testRecordAttemptOutOfOrder(t *testing.T, b backend) {
	s := newStore(t, b)
	ctx := context.Background()
	mustRecord(t, s, policy("B1"), event("B1", 1, 1, "pre_insured"))
	if err := s.RecordAttempt(ctx, attempt("B1", 1, 3, "rate_limited")); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordAttempt(ctx, attempt("B1", 1, 2, "retryable")); err != nil {
		t.Fatal(err)
	}
	ev := mustEvents(t, s, "B1")[0]
	if ev.Attempts != 3 || ev.LastClass != "rate_limited" || ev.LastError != "busy 3" {
		t.Fatalf("event=%+v, want attempts 3 and attempt 3's class and error", ev)
	}
	// A late failure must not undo the workflow's decision to park.
	if err := s.SetCallback(ctx, "B1", 1, "parked", "parked"); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordAttempt(ctx, attempt("B1", 1, 4, "permanent")); err != nil {
		t.Fatal(err)
	}
	if ev := mustEvents(t, s, "B1")[0]; ev.Callback != "parked" || ev.Attempts != 4 || ev.LastClass != "permanent" {
		t.Fatalf("event=%+v, want still parked with attempt 4 counted", ev)
	}
}

func testRecordAttemptDelivered(t *testing.T, b backend) {
	s := newStore(t, b)
	ctx := context.Background()
	mustRecord(t, s, policy("B1"), event("B1", 1, 1, "pre_insured"), event("B1", 2, 2, "underwritten"))
	if err := s.RecordAttempt(ctx, attempt("B1", 1, 1, "retryable")); err != nil {
		t.Fatal(err)
	}
	ok := attempt("B1", 1, 2, ClassDelivered)
	ok.Duration = 250 * time.Millisecond
	for range 2 {
		if err := s.RecordAttempt(ctx, ok); err != nil {
			t.Fatalf("RecordAttempt delivered: %v", err)
		}
	}
	evs := mustEvents(t, s, "B1")
	ev := evs[0]
	wantAt := ok.StartedAt.Add(ok.Duration).Truncate(time.Microsecond)
	if ev.Callback != "delivered" || ev.DeliveredAt == nil || !ev.DeliveredAt.Equal(wantAt) {
		t.Fatalf("event=%+v (delivered_at %v), want delivered at %v", ev, ev.DeliveredAt, wantAt)
	}
	if ev.Attempts != 2 || ev.LastClass != ClassDelivered || ev.LastError != "" {
		t.Fatalf("event=%+v, want attempts 2, class delivered, no error", ev)
	}
	if evs[1].Callback != "queued" || evs[1].DeliveredAt != nil {
		t.Fatalf("seq 2=%+v, want untouched (queued, not delivered)", evs[1])
	}
	// Delivery is final: neither a stale failure nor SetCallback undoes it.
	if err := s.RecordAttempt(ctx, attempt("B1", 1, 3, "retryable")); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCallback(ctx, "B1", 1, "parked", ""); err != nil {
		t.Fatal(err)
	}
	ev = mustEvents(t, s, "B1")[0]
	if ev.Callback != "delivered" || ev.DeliveredAt == nil || !ev.DeliveredAt.Equal(wantAt) {
		t.Fatalf("event=%+v, want still delivered at %v", ev, wantAt)
	}
}

func testRecordAttemptUnknownEvent(t *testing.T, b backend) {
	s := newStore(t, b)
	ctx := context.Background()
	mustRecord(t, s, policy("B1"), event("B1", 1, 1, "pre_insured"))
	for _, a := range []Attempt{attempt("B1", 7, 1, "retryable"), attempt("B404", 1, 1, "retryable")} {
		err := s.RecordAttempt(ctx, a)
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("RecordAttempt(%s seq %d) err=%v, want ErrNotFound", a.BizID, a.Seq, err)
		}
		if !strings.Contains(err.Error(), a.BizID) || !strings.Contains(err.Error(), fmt.Sprintf("seq %d", a.Seq)) {
			t.Fatalf("error %q does not name biz_id %s seq %d", err, a.BizID, a.Seq)
		}
	}
	if as := mustAttempts(t, s, "B1"); len(as) != 0 {
		t.Fatalf("attempts=%+v, want none", as)
	}
	t.Run("Invalid", func(t *testing.T) {
		bad := attempt("B1", 1, 0, "retryable")
		var invalid *InvalidError
		if err := s.RecordAttempt(ctx, bad); !errors.As(err, &invalid) || invalid.Field != "attempt number" {
			t.Fatalf("err=%v, want *InvalidError on attempt number", err)
		}
		bad = attempt("B1", 1, 1, "")
		if err := s.RecordAttempt(ctx, bad); !errors.As(err, &invalid) || invalid.Field != "attempt class" {
			t.Fatalf("err=%v, want *InvalidError on attempt class", err)
		}
	})
}

func testRecordAttemptClasses(t *testing.T, b backend) {
	s := newStore(t, b)
	ctx := context.Background()
	mustRecord(t, s, policy("B1"), event("B1", 1, 1, "pre_insured"))
	for n, class := range []string{ClassDelivered, "rejected", "retryable", "rate_limited", "permanent"} {
		if err := s.RecordAttempt(ctx, attempt("B1", 1, n+1, class)); err != nil {
			t.Fatalf("RecordAttempt(%s): %v", class, err)
		}
	}
	// The markers are StartAttempt's to write; a typo is nobody's.
	for _, class := range []string{ClassStarted, ClassLost, "transient", "Delivered"} {
		t.Run(class, func(t *testing.T) {
			err := s.RecordAttempt(ctx, attempt("B1", 1, 9, class))
			var invalid *InvalidError
			if !errors.As(err, &invalid) || invalid.Field != "attempt class" ||
				!strings.Contains(invalid.Problem, fmt.Sprintf("%q is not one of delivered, rejected", class)) {
				t.Fatalf("err=%v, want *InvalidError on attempt class listing the outcome classes", err)
			}
		})
	}
	if as := mustAttempts(t, s, "B1"); len(as) != 5 {
		t.Fatalf("attempts=%d, want the 5 outcomes only", len(as))
	}
}

// startedRow is the row StartAttempt writes for attempt n of attempt().
func startedRow(bizID string, seq int64, n int) Attempt {
	return Attempt{BizID: bizID, Seq: seq, Attempt: n, StartedAt: attempt(bizID, seq, n, "").StartedAt, Class: ClassStarted}
}

func lostRow(bizID string, seq int64, n int, noticedAt time.Time) Attempt {
	return Attempt{BizID: bizID, Seq: seq, Attempt: n, StartedAt: noticedAt, Class: ClassLost, Detail: LostAttemptDetail}
}

func mustStart(t *testing.T, s *Store, bizID string, seq int64, n int) {
	t.Helper()
	if err := s.StartAttempt(context.Background(), bizID, seq, n, startedRow(bizID, seq, n).StartedAt); err != nil {
		t.Fatalf("StartAttempt(%s seq %d attempt %d): %v", bizID, seq, n, err)
	}
}

func mustRecordAttempt(t *testing.T, s *Store, a Attempt) {
	t.Helper()
	if err := s.RecordAttempt(context.Background(), a); err != nil {
		t.Fatalf("RecordAttempt(%s seq %d attempt %d %s): %v", a.BizID, a.Seq, a.Attempt, a.Class, err)
	}
}

func wantAttempts(t *testing.T, s *Store, bizID string, want ...Attempt) {
	t.Helper()
	for i := range want {
		want[i].StartedAt = want[i].StartedAt.Truncate(time.Microsecond)
	}
	if got := mustAttempts(t, s, bizID); !slices.Equal(got, want) {
		t.Fatalf("attempts of %s:\n got %+v\nwant %+v", bizID, got, want)
	}
}

func testStartAttemptThenOutcome(t *testing.T, b backend) {
	s := newStore(t, b)
	mustRecord(t, s, policy("B1"), event("B1", 1, 1, "pre_insured"), event("B1", 2, 2, "underwritten"))
	for range 2 { // a retried write records once
		mustStart(t, s, "B1", 1, 1)
	}
	wantAttempts(t, s, "B1", startedRow("B1", 1, 1))
	ev := mustEvents(t, s, "B1")[0]
	if ev.Attempts != 1 || ev.LastClass != "" || ev.LastError != "" || ev.Callback != "queued" || ev.DeliveredAt != nil {
		t.Fatalf("event=%+v, want 1 attempt counted, no class or error, callback untouched", ev)
	}

	failed := attempt("B1", 1, 1, "retryable")
	for range 2 {
		mustRecordAttempt(t, s, failed)
	}
	wantAttempts(t, s, "B1", failed)
	if ev := mustEvents(t, s, "B1")[0]; ev.Attempts != 1 || ev.LastClass != "retryable" || ev.LastError != "busy 1" || ev.Callback != "retrying" {
		t.Fatalf("event=%+v, want attempt 1's outcome, retrying", ev)
	}

	mustStart(t, s, "B1", 1, 2)
	if ev := mustEvents(t, s, "B1")[0]; ev.Attempts != 2 || ev.LastClass != "retryable" || ev.LastError != "busy 1" || ev.Callback != "retrying" {
		t.Fatalf("event=%+v, want 2 attempts, still attempt 1's class and error", ev)
	}
	ok := attempt("B1", 1, 2, ClassDelivered)
	mustRecordAttempt(t, s, ok)
	wantAttempts(t, s, "B1", failed, ok)
	ev = mustEvents(t, s, "B1")[0]
	wantAt := ok.StartedAt.Add(ok.Duration).Truncate(time.Microsecond)
	if ev.Attempts != 2 || ev.LastClass != ClassDelivered || ev.LastError != "" || ev.Callback != "delivered" ||
		ev.DeliveredAt == nil || !ev.DeliveredAt.Equal(wantAt) {
		t.Fatalf("event=%+v, want delivered by attempt 2 at %v", ev, wantAt)
	}
	if ev := mustEvents(t, s, "B1")[1]; ev.Attempts != 0 || ev.Callback != "queued" {
		t.Fatalf("seq 2=%+v, want untouched", ev)
	}
}

func testStartAttemptRecordsLost(t *testing.T, b backend) {
	s := newStore(t, b)
	mustRecord(t, s, policy("B1"), event("B1", 1, 1, "pre_insured"))
	first := attempt("B1", 1, 1, "retryable")
	mustStart(t, s, "B1", 1, 1)
	mustRecordAttempt(t, s, first)
	// Attempt 2's worker was killed before it recorded anything, and no
	// worker ran attempt 3: attempt 4 finds them without a row.
	mustStart(t, s, "B1", 1, 4)
	at4 := startedRow("B1", 1, 4).StartedAt
	wantAttempts(t, s, "B1", first, lostRow("B1", 1, 2, at4), lostRow("B1", 1, 3, at4), startedRow("B1", 1, 4))
	ev := mustEvents(t, s, "B1")[0]
	if ev.Attempts != 4 || ev.LastClass != "retryable" || ev.LastError != "busy 1" || ev.Callback != "retrying" {
		t.Fatalf("event=%+v, want 4 attempts counted, attempt 1's outcome kept", ev)
	}

	// Attempt 3's worker was only slow: its outcome replaces the lost row,
	// but the event keeps counting from attempt 4.
	late := attempt("B1", 1, 3, "rate_limited")
	mustRecordAttempt(t, s, late)
	wantAttempts(t, s, "B1", first, lostRow("B1", 1, 2, at4), late, startedRow("B1", 1, 4))
	if ev := mustEvents(t, s, "B1")[0]; ev.Attempts != 4 || ev.LastClass != "retryable" {
		t.Fatalf("event=%+v, want 4 attempts and attempt 1's class: attempt 3 is older than the started attempt 4", ev)
	}

	// Starting attempt 4 again, or an earlier one, writes nothing.
	mustStart(t, s, "B1", 1, 4)
	mustStart(t, s, "B1", 1, 2)
	ok := attempt("B1", 1, 4, ClassDelivered)
	mustRecordAttempt(t, s, ok)
	wantAttempts(t, s, "B1", first, lostRow("B1", 1, 2, at4), late, ok)
	if ev := mustEvents(t, s, "B1")[0]; ev.Attempts != 4 || ev.LastClass != ClassDelivered || ev.Callback != "delivered" {
		t.Fatalf("event=%+v, want delivered by attempt 4", ev)
	}
}

func testStartAttemptKeepsOutcomes(t *testing.T, b backend) {
	s := newStore(t, b)
	ctx := context.Background()
	mustRecord(t, s, policy("B1"), event("B1", 1, 1, "pre_insured"))
	ok := attempt("B1", 1, 2, ClassDelivered)
	mustStart(t, s, "B1", 1, 2)
	mustRecordAttempt(t, s, ok)
	wantAt := ok.StartedAt.Add(ok.Duration).Truncate(time.Microsecond)

	// A later start of the same attempt (a retried write) and a start of a
	// higher one (which finds attempt 2 recorded, not lost) leave the
	// delivery as it is; so does a second, different outcome.
	mustStart(t, s, "B1", 1, 2)
	mustStart(t, s, "B1", 1, 3)
	other := attempt("B1", 1, 2, "retryable")
	mustRecordAttempt(t, s, other)
	at1 := startedRow("B1", 1, 2).StartedAt
	wantAttempts(t, s, "B1", lostRow("B1", 1, 1, at1), ok, startedRow("B1", 1, 3))
	ev := mustEvents(t, s, "B1")[0]
	if ev.Callback != "delivered" || ev.DeliveredAt == nil || !ev.DeliveredAt.Equal(wantAt) || ev.Attempts != 3 || ev.LastClass != ClassDelivered {
		t.Fatalf("event=%+v, want still delivered at %v by attempt 2, 3 attempts counted", ev, wantAt)
	}
	// And the started attempt 3 ends too: the event stays delivered.
	if err := s.RecordAttempt(ctx, attempt("B1", 1, 3, "retryable")); err != nil {
		t.Fatal(err)
	}
	if ev := mustEvents(t, s, "B1")[0]; ev.Callback != "delivered" || !ev.DeliveredAt.Equal(wantAt) {
		t.Fatalf("event=%+v, want still delivered", ev)
	}
}

func testStartAttemptInvalid(t *testing.T, b backend) {
	s := newStore(t, b)
	ctx := context.Background()
	mustRecord(t, s, policy("B1"), event("B1", 1, 1, "pre_insured"))
	for _, tt := range []struct {
		name    string
		bizID   string
		seq     int64
		attempt int
		at      time.Time
		field   string
	}{
		{"attempt zero", "B1", 1, 0, clock, "attempt number"},
		{"attempt beyond 32 bits", "B1", 1, math.MaxInt32 + 1, clock, "attempt number"},
		{"zero start", "B1", 1, 1, time.Time{}, "attempt started_at"},
		{"empty biz_id", "", 1, 1, clock, "attempt biz_id"},
		{"seq zero", "B1", 0, 1, clock, "attempt seq"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var invalid *InvalidError
			if err := s.StartAttempt(ctx, tt.bizID, tt.seq, tt.attempt, tt.at); !errors.As(err, &invalid) || invalid.Field != tt.field {
				t.Fatalf("err=%v, want *InvalidError on %s", err, tt.field)
			}
		})
	}
	for _, target := range []struct {
		bizID string
		seq   int64
	}{{"B1", 7}, {"B404", 1}} {
		err := s.StartAttempt(ctx, target.bizID, target.seq, 3, clock)
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), fmt.Sprintf("biz_id %q seq %d", target.bizID, target.seq)) {
			t.Fatalf("StartAttempt(%s seq %d) err=%v, want ErrNotFound naming both", target.bizID, target.seq, err)
		}
	}
	if as := mustAttempts(t, s, "B1"); len(as) != 0 {
		t.Fatalf("attempts=%+v after refused calls, want none", as)
	}
}

func testSetCallback(t *testing.T, b backend) {
	s := newStore(t, b)
	ctx := context.Background()
	mustRecord(t, s, policy("B1"), event("B1", 1, 1, "pre_insured"), event("B1", 2, 2, "underwritten"))

	later := clock.Add(time.Hour)
	s.now = func() time.Time { return later }
	for i := range 2 {
		if err := s.SetCallback(ctx, "B1", 1, "parked", "parked"); err != nil {
			t.Fatalf("SetCallback call %d: %v", i+1, err)
		}
	}
	evs := mustEvents(t, s, "B1")
	if evs[0].Callback != "parked" || evs[1].Callback != "queued" {
		t.Fatalf("callbacks=%q,%q, want parked,queued", evs[0].Callback, evs[1].Callback)
	}
	p := mustPolicy(t, s, "B1")
	if p.CallbackState != "parked" || !p.UpdatedAt.Equal(later.Truncate(time.Microsecond)) {
		t.Fatalf("policy=%+v, want callback_state parked updated at %v", p, later)
	}

	// Repeating the same state does not touch updated_at.
	s.now = func() time.Time { return later.Add(time.Hour) }
	if err := s.SetCallback(ctx, "B1", 1, "parked", "parked"); err != nil {
		t.Fatal(err)
	}
	if p := mustPolicy(t, s, "B1"); !p.UpdatedAt.Equal(later.Truncate(time.Microsecond)) {
		t.Fatalf("updated_at=%v after a repeated SetCallback, want %v", p.UpdatedAt, later)
	}

	// An operator skips it; an empty policy state leaves the policy alone.
	if err := s.SetCallback(ctx, "B1", 1, "skipped", ""); err != nil {
		t.Fatal(err)
	}
	if got := mustEvents(t, s, "B1")[0].Callback; got != "skipped" {
		t.Fatalf("callback=%q, want skipped", got)
	}
	if got := mustPolicy(t, s, "B1").CallbackState; got != "parked" {
		t.Fatalf("policy callback_state=%q, want parked (unchanged)", got)
	}

	t.Run("UnknownEvent", func(t *testing.T) {
		err := s.SetCallback(ctx, "B1", 9, "skipped", "idle")
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "seq 9") {
			t.Fatalf("err=%v, want ErrNotFound naming seq 9", err)
		}
		if got := mustPolicy(t, s, "B1").CallbackState; got != "parked" {
			t.Fatalf("policy callback_state=%q after a failed call, want parked", got)
		}
	})
	t.Run("BadValues", func(t *testing.T) {
		var invalid *InvalidError
		if err := s.SetCallback(ctx, "B1", 1, "gone", "idle"); !errors.As(err, &invalid) || invalid.Field != "event callback" {
			t.Fatalf("err=%v, want *InvalidError on event callback", err)
		}
		if err := s.SetCallback(ctx, "B1", 1, "queued", "asleep"); !errors.As(err, &invalid) || invalid.Field != "policy callback_state" {
			t.Fatalf("err=%v, want *InvalidError on policy callback_state", err)
		}
		if !strings.Contains(invalid.Error(), "idle, pending, retrying, parked") {
			t.Fatalf("error %q does not list the allowed states", invalid)
		}
	})
}

func testPolicyNotFound(t *testing.T, b backend) {
	s := newStore(t, b)
	_, err := s.Policy(context.Background(), "B404")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"B404"`) {
		t.Fatalf("err=%v, want ErrNotFound naming B404", err)
	}
	if evs := mustEvents(t, s, "B404"); len(evs) != 0 {
		t.Fatalf("events of unknown policy=%+v, want none", evs)
	}
}

func testListPolicies(t *testing.T, b backend) {
	s := newStore(t, b)
	ctx := context.Background()
	// 12 policies: states alternate insured/cancelled; every third is parked.
	for i := 1; i <= 12; i++ {
		id := fmt.Sprintf("B%02d", i)
		state := "insured"
		if i%2 == 0 {
			state = "cancelled"
		}
		cb := "idle"
		if i%3 == 0 {
			cb = "parked"
		}
		mustRecord(t, s, Policy{BizID: id, InsuranceType: 1, CallbackState: cb}, event(id, 1, 3, state))
	}
	ids := func(ps []Policy) string {
		var out []string
		for _, p := range ps {
			out = append(out, p.BizID)
		}
		return strings.Join(out, ",")
	}
	tests := []struct {
		name   string
		filter ListFilter
		want   string
	}{
		{"All", ListFilter{}, "B01,B02,B03,B04,B05,B06,B07,B08,B09,B10,B11,B12"},
		{"ByState", ListFilter{State: "cancelled"}, "B02,B04,B06,B08,B10,B12"},
		{"ByCallbackState", ListFilter{CallbackState: "parked"}, "B03,B06,B09,B12"},
		{"Both", ListFilter{State: "cancelled", CallbackState: "parked"}, "B06,B12"},
		{"FirstPage", ListFilter{Limit: 5}, "B01,B02,B03,B04,B05"},
		{"NextPage", ListFilter{AfterBizID: "B05", Limit: 5}, "B06,B07,B08,B09,B10"},
		{"LastPage", ListFilter{AfterBizID: "B10", Limit: 5}, "B11,B12"},
		{"PastEnd", ListFilter{AfterBizID: "B12"}, ""},
		{"FilteredPage", ListFilter{State: "insured", AfterBizID: "B03", Limit: 2}, "B05,B07"},
		{"NoMatch", ListFilter{State: "pre_insured"}, ""},
		{"HugeLimitIsCapped", ListFilter{Limit: 10_000}, "B01,B02,B03,B04,B05,B06,B07,B08,B09,B10,B11,B12"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, err := s.ListPolicies(ctx, tt.filter)
			if err != nil {
				t.Fatalf("ListPolicies(%+v): %v", tt.filter, err)
			}
			if got := ids(ps); got != tt.want {
				t.Fatalf("ListPolicies(%+v)=%s, want %s", tt.filter, got, tt.want)
			}
		})
	}
	t.Run("RowContents", func(t *testing.T) {
		ps, err := s.ListPolicies(ctx, ListFilter{AfterBizID: "B05", Limit: 1})
		if err != nil || len(ps) != 1 {
			t.Fatalf("ListPolicies=%+v (err %v), want one policy", ps, err)
		}
		if got, want := ps[0], mustPolicy(t, s, "B06"); got != want {
			t.Fatalf("listed=%+v, want %+v (as Policy returns it)", got, want)
		}
	})
	t.Run("DefaultLimit", func(t *testing.T) {
		for i := 13; i <= DefaultListLimit+5; i++ {
			id := fmt.Sprintf("B%02d", i)
			mustRecord(t, s, Policy{BizID: id, InsuranceType: 1}, event(id, 1, 1, "pre_insured"))
		}
		ps, err := s.ListPolicies(ctx, ListFilter{})
		if err != nil || len(ps) != DefaultListLimit {
			t.Fatalf("ListPolicies returned %d (err %v), want %d", len(ps), err, DefaultListLimit)
		}
	})
	t.Run("NegativeLimit", func(t *testing.T) {
		var invalid *InvalidError
		if _, err := s.ListPolicies(ctx, ListFilter{Limit: -1}); !errors.As(err, &invalid) {
			t.Fatalf("err=%v, want *InvalidError", err)
		}
	})
}

// runConcurrently calls fn from n goroutines released at once, goroutine i
// using store i modulo len(stores), and returns every error.
func runConcurrently(n int, stores []*Store, fn func(i int, s *Store) error) []error {
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i, stores[i%len(stores)])
		})
	}
	close(start)
	wg.Wait()
	return errs
}

func testConcurrentRecordAttempt(t *testing.T, b backend) {
	url := b.newURL(t)
	s1, s2 := openStore(t, url), openStore(t, url)
	mustRecord(t, s1, policy("B1"), event("B1", 1, 1, "pre_insured"))
	a := attempt("B1", 1, 1, "retryable")
	errs := runConcurrently(8, []*Store{s1, s2}, func(_ int, s *Store) error {
		return s.RecordAttempt(context.Background(), a)
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("goroutine %d: %v", i, err)
		}
	}
	if as := mustAttempts(t, s2, "B1"); len(as) != 1 {
		t.Fatalf("attempts=%d, want exactly 1", len(as))
	}
	if ev := mustEvents(t, s1, "B1")[0]; ev.Attempts != 1 || ev.Callback != "retrying" {
		t.Fatalf("event=%+v, want attempts 1, retrying", ev)
	}
}

func testConcurrentRecordEvents(t *testing.T, b backend) {
	url := b.newURL(t)
	s1, s2 := openStore(t, url), openStore(t, url)
	evs := []Event{event("B1", 1, 1, "pre_insured"), event("B1", 2, 2, "underwritten")}
	errs := runConcurrently(8, []*Store{s1, s2}, func(_ int, s *Store) error {
		return s.RecordEvents(context.Background(), policy("B1"), evs...)
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("goroutine %d: %v", i, err)
		}
	}
	if got := mustEvents(t, s2, "B1"); len(got) != 2 {
		t.Fatalf("events=%d, want 2", len(got))
	}
	if p := mustPolicy(t, s1, "B1"); p.LastSeq != 2 || p.State != "underwritten" {
		t.Fatalf("policy=%+v, want seq 2 underwritten", p)
	}
}

// testListPoliciesByteOrder checks that ListPolicies orders and pages by
// bytes (Go's string order) whatever the database's collation would say.
func testListPoliciesByteOrder(t *testing.T, b backend) {
	s := newStore(t, b)
	ctx := context.Background()
	ids := []string{"b1", "B2", "a3", "Z4", "_5", "B-6", "ä7", "A8", "10", "9", "B_1", "bb", "B"}
	for _, id := range ids {
		mustRecord(t, s, Policy{BizID: id, InsuranceType: 1}, event(id, 1, 1, "pre_insured"))
	}
	want := slices.Sorted(slices.Values(ids))
	list := func(f ListFilter) []string {
		t.Helper()
		ps, err := s.ListPolicies(ctx, f)
		if err != nil {
			t.Fatalf("ListPolicies(%+v): %v", f, err)
		}
		out := make([]string, len(ps))
		for i, p := range ps {
			out[i] = p.BizID
		}
		return out
	}
	if got := list(ListFilter{}); !slices.Equal(got, want) {
		t.Fatalf("ListPolicies=%q, want byte order %q", got, want)
	}
	t.Run("Pages", func(t *testing.T) {
		var paged []string
		for after := ""; ; {
			page := list(ListFilter{AfterBizID: after, Limit: 4})
			if len(page) == 0 {
				break
			}
			paged = append(paged, page...)
			after = page[len(page)-1]
		}
		if !slices.Equal(paged, want) {
			t.Fatalf("paged=%q, want %q", paged, want)
		}
	})
	t.Run("AfterComparesBytes", func(t *testing.T) {
		var after []string
		for _, id := range want {
			if id > "B" {
				after = append(after, id)
			}
		}
		if got := list(ListFilter{AfterBizID: "B"}); !slices.Equal(got, after) {
			t.Fatalf("after \"B\"=%q, want %q", got, after)
		}
	})
}

// testStorableText checks that values one backend could store and another
// could not are refused (or, for diagnostic text, cleaned) alike everywhere.
func testStorableText(t *testing.T, b backend) {
	s := newStore(t, b)
	ctx := context.Background()
	mustRecord(t, s, policy("B1"), event("B1", 1, 1, "pre_insured"))

	for _, bad := range []struct{ name, value, problem string }{
		{"NUL", "a\x00b", "contains a NUL byte"},
		{"InvalidUTF8", "a\xffb", "is not valid UTF-8"},
	} {
		t.Run(bad.name, func(t *testing.T) {
			v := bad.value
			withEvent := func(edit func(*Event)) func() error {
				return func() error {
					e := event("B1", 2, 2, "underwritten")
					edit(&e)
					return s.RecordEvents(ctx, policy("B1"), e)
				}
			}
			calls := []struct {
				name  string
				field string
				call  func() error
			}{
				{"PolicyBizID", "policy biz_id", func() error { return s.RecordEvents(ctx, policy(v), event(v, 1, 1, "x")) }},
				{"PolicyNumber", "policy policy_number", func() error {
					p := policy("B1")
					p.PolicyNumber = v
					return s.RecordEvents(ctx, p, event("B1", 2, 2, "underwritten"))
				}},
				{"RequestID", "event seq 2 request_id", withEvent(func(e *Event) { e.RequestID = v })},
				{"TimeOfOccurrence", "event seq 2 time_of_occurrence", withEvent(func(e *Event) { e.TimeOfOccurrence = v })},
				{"StateAfter", "event seq 2 state_after", withEvent(func(e *Event) { e.StateAfter = v })},
				{"AttemptClass", "attempt class", func() error { return s.RecordAttempt(ctx, attempt("B1", 1, 1, v)) }},
				{"SetCallback", "biz_id", func() error { return s.SetCallback(ctx, v, 1, "queued", "") }},
				{"Policy", "biz_id", func() error { _, err := s.Policy(ctx, v); return err }},
				{"Events", "biz_id", func() error { _, err := s.Events(ctx, v); return err }},
				{"Attempts", "biz_id", func() error { _, err := s.Attempts(ctx, v); return err }},
				{"ListAfter", "list after_biz_id", func() error { _, err := s.ListPolicies(ctx, ListFilter{AfterBizID: v}); return err }},
				{"ListState", "list state", func() error { _, err := s.ListPolicies(ctx, ListFilter{State: v}); return err }},
			}
			for _, c := range calls {
				t.Run(c.name, func(t *testing.T) {
					err := c.call()
					var invalid *InvalidError
					if !errors.As(err, &invalid) {
						t.Fatalf("err=%v (%T), want *InvalidError", err, err)
					}
					if invalid.Field != c.field || invalid.Problem != bad.problem {
						t.Fatalf("invalid %q: %q, want %q: %q", invalid.Field, invalid.Problem, c.field, bad.problem)
					}
				})
			}
			// The payload is checked too; a NUL byte makes it invalid JSON first.
			err := withEvent(func(e *Event) { e.Payload = `{"name":"` + v + `"}` })()
			var invalid *InvalidError
			if !errors.As(err, &invalid) || invalid.Field != "event seq 2 payload" {
				t.Fatalf("payload %q: err=%v, want *InvalidError on event seq 2 payload", bad.name, err)
			}
		})
	}
	t.Run("IntegerRange", func(t *testing.T) {
		e := event("B1", 2, math.MaxInt32+1, "underwritten")
		var invalid *InvalidError
		if err := s.RecordEvents(ctx, policy("B1"), e); !errors.As(err, &invalid) || invalid.Field != "event seq 2 stage" {
			t.Fatalf("err=%v, want *InvalidError on event seq 2 stage", err)
		}
		a := attempt("B1", 1, 1, "retryable")
		a.Code = math.MinInt32 - 1
		if err := s.RecordAttempt(ctx, a); !errors.As(err, &invalid) || invalid.Field != "attempt code" {
			t.Fatalf("err=%v, want *InvalidError on attempt code", err)
		}
	})
	if evs := mustEvents(t, s, "B1"); len(evs) != 1 {
		t.Fatalf("events=%d after refused calls, want 1", len(evs))
	}
	if as := mustAttempts(t, s, "B1"); len(as) != 0 {
		t.Fatalf("attempts=%d after refused calls, want 0", len(as))
	}

	t.Run("EscapedNULInPayloadIsFine", func(t *testing.T) {
		e := event("B1", 2, 2, "underwritten")
		e.Payload = `{"note":"a\u0000b"}`
		mustRecord(t, s, policy("B1"), e)
		if got := mustEvents(t, s, "B1")[1].Payload; got != e.Payload {
			t.Fatalf("payload=%q, want %q", got, e.Payload)
		}
	})
	t.Run("DiagnosticTextIsCleaned", func(t *testing.T) {
		a := attempt("B1", 1, 1, "retryable")
		a.Msg = "busy\x00now"
		a.SubMsg = "bad \xff byte"
		a.Detail = "gateway said \xfe\xfd"
		if err := s.RecordAttempt(ctx, a); err != nil {
			t.Fatalf("RecordAttempt: %v", err)
		}
		got := mustAttempts(t, s, "B1")[0]
		if got.Msg != "busy\uFFFDnow" || got.SubMsg != "bad \uFFFD byte" || got.Detail != "gateway said \uFFFD" {
			t.Fatalf("stored msg=%q sub_msg=%q detail=%q, want invalid bytes replaced by U+FFFD", got.Msg, got.SubMsg, got.Detail)
		}
		if ev := mustEvents(t, s, "B1")[0]; ev.LastError != "bad \uFFFD byte" {
			t.Fatalf("event last_error=%q, want the cleaned sub_msg", ev.LastError)
		}
	})
}
