package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkDeliveryWrites is what one delivered callback costs the store:
// BeginDelivery before the TOP call, RecordAttempt after it, on SQLite and,
// with TEST_POSTGRES_URL set, on PostgreSQL, where each statement is a
// round trip. (make microbench)
func BenchmarkDeliveryWrites(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		benchDeliveryWrites(b, "sqlite://"+filepath.Join(b.TempDir(), "bench.db"))
	})
	b.Run("postgres", func(b *testing.B) {
		base := os.Getenv(testPostgresURLVar)
		if base == "" {
			b.Skip(testPostgresURLVar + " is not set")
		}
		u, err := createPostgresDatabase(b, base, "")
		if err != nil {
			b.Fatal(err)
		}
		benchDeliveryWrites(b, u)
	})
}

func benchDeliveryWrites(b *testing.B, url string) {
	ctx := context.Background()
	s, err := Open(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	i := 0
	for b.Loop() {
		i++
		biz := fmt.Sprintf("BENCH%010d", i)
		started := time.Now()
		p := Policy{BizID: biz, State: "pre_insured", InsuranceType: 1, LastSeq: 1, LastOccurredAt: "2026-01-01 00:00:00", CallbackState: "idle"}
		e := Event{BizID: biz, Seq: 1, RequestID: "r-" + biz, Stage: 1, Status: 1, TimeOfOccurrence: "2026-01-01 00:00:00",
			Payload: "{}", AcceptedAt: started, StateAfter: "pre_insured", Callback: "sending"}
		if g, err := s.BeginDelivery(ctx, p, e, 1, started, started, 0); err != nil || g.Attempt != 1 {
			b.Fatalf("BeginDelivery = %+v, %v", g, err)
		}
		if err := s.RecordAttempt(ctx, Attempt{BizID: biz, Seq: 1, Attempt: 1, StartedAt: started,
			Duration: time.Millisecond, Class: ClassDelivered}); err != nil {
			b.Fatal(err)
		}
	}
}
