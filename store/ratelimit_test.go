package store

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestCallSlots runs the limiter's tests against every backend.
func TestCallSlots(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		t.Run("AdmitsLimitThenWaits", func(t *testing.T) { testCallSlotsAdmitThenWait(t, b) })
		t.Run("KeysAreIndependent", func(t *testing.T) { testCallSlotsKeys(t, b) })
		t.Run("RejectsBadArguments", func(t *testing.T) { testCallSlotsInvalid(t, b) })
		t.Run("TwoHandlesNeverExceedTheLimit", func(t *testing.T) { testCallSlotsConcurrent(t, b) })
	})
}

func testCallSlotsAdmitThenWait(t *testing.T, b backend) {
	s := newStore(t, b)
	ctx := context.Background()
	// A window far longer than the test, so nothing leaves it meanwhile.
	const window = time.Hour
	var slots []CallSlot
	for i := range 3 {
		slot, wait, err := s.TakeCallSlot(ctx, "app", 3, window)
		if err != nil || wait != 0 || slot.ID == "" {
			t.Fatalf("take %d: slot=%+v wait=%v err=%v, want a slot", i+1, slot, wait, err)
		}
		if slot.Key != "app" || slot.NotBefore.After(time.Now()) || slot.TakenAt.IsZero() {
			t.Fatalf("take %d: slot=%+v, want key app, NotBefore in the past, TakenAt set", i+1, slot)
		}
		slots = append(slots, slot)
	}
	slot, wait, err := s.TakeCallSlot(ctx, "app", 3, window)
	if err != nil || slot.ID != "" {
		t.Fatalf("take 4: slot=%+v err=%v, want no slot", slot, err)
	}
	// The first slot leaves the window an hour after it was taken.
	if wait <= window-time.Minute || wait > window {
		t.Fatalf("take 4: wait=%v, want just under %v", wait, window)
	}
	// A released slot stops counting; releasing it twice is a no-op.
	for range 2 {
		if err := s.ReleaseCallSlot(ctx, slots[1]); err != nil {
			t.Fatalf("ReleaseCallSlot: %v", err)
		}
	}
	if slot, wait, err := s.TakeCallSlot(ctx, "app", 3, window); err != nil || wait != 0 || slot.ID == "" {
		t.Fatalf("take after release: slot=%+v wait=%v err=%v, want a slot", slot, wait, err)
	}
	// A lower limit than the slots held waits for the one that must leave
	// last: with 3 held and a limit of 1, the newest.
	if _, wait, err := s.TakeCallSlot(ctx, "app", 1, window); err != nil || wait <= window-time.Minute {
		t.Fatalf("limit 1: wait=%v err=%v, want just under %v", wait, err, window)
	}
}

func testCallSlotsKeys(t *testing.T, b backend) {
	s := newStore(t, b)
	ctx := context.Background()
	if _, wait, err := s.TakeCallSlot(ctx, "app-a", 1, time.Hour); err != nil || wait != 0 {
		t.Fatalf("app-a: wait=%v err=%v, want a slot", wait, err)
	}
	if _, wait, err := s.TakeCallSlot(ctx, "app-b", 1, time.Hour); err != nil || wait != 0 {
		t.Fatalf("app-b: wait=%v err=%v, want a slot of its own", wait, err)
	}
	if _, wait, err := s.TakeCallSlot(ctx, "app-a", 1, time.Hour); err != nil || wait == 0 {
		t.Fatalf("app-a again: wait=%v err=%v, want a wait", wait, err)
	}
}

func testCallSlotsInvalid(t *testing.T, b backend) {
	s := newStore(t, b)
	for _, c := range []struct {
		limit  int
		window time.Duration
		field  string
	}{{0, time.Second, "limit"}, {1, 0, "window"}} {
		_, _, err := s.TakeCallSlot(context.Background(), "app", c.limit, c.window)
		var invalid *InvalidError
		if !errors.As(err, &invalid) || invalid.Field != c.field {
			t.Fatalf("TakeCallSlot(limit %d, window %v) error=%v, want an InvalidError on %s", c.limit, c.window, err, c.field)
		}
	}
}

// testCallSlotsConcurrent has two Store handles (two workers) race for
// slots from many goroutines, each waiting as told, and checks the one
// property that matters: in the admitted times, no window holds more than
// limit calls. It asserts no speed, so a slow machine cannot fail it.
func testCallSlotsConcurrent(t *testing.T, b backend) {
	url := b.newURL(t)
	handles := []*Store{openStore(t, url), openStore(t, url)}
	const (
		limit   = 4
		window  = 300 * time.Millisecond
		perTask = 4
		tasks   = 6 // per handle
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var (
		mu    sync.Mutex
		taken []time.Time
		wg    sync.WaitGroup
		errs  = make(chan error, 2*tasks)
	)
	for _, s := range handles {
		for range tasks {
			wg.Go(func() {
				for n := 0; n < perTask; {
					slot, wait, err := s.TakeCallSlot(ctx, "race", limit, window)
					if err != nil {
						errs <- err
						return
					}
					if wait > 0 {
						time.Sleep(wait)
						continue
					}
					mu.Lock()
					taken = append(taken, slot.TakenAt)
					mu.Unlock()
					n++
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("TakeCallSlot: %v", err)
	}
	if len(taken) != 2*tasks*perTask {
		t.Fatalf("%d slots taken, want %d", len(taken), 2*tasks*perTask)
	}
	slices.SortFunc(taken, func(a, b time.Time) int { return a.Compare(b) })
	for i := 0; i+limit < len(taken); i++ {
		if d := taken[i+limit].Sub(taken[i]); d < window {
			t.Fatalf("slots %d and %d were admitted %v apart: %d calls within %v, want at most %d", i, i+limit, d, limit+1, window, limit)
		}
	}
}
