package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeStack stands in for devstack.Stack: it records what the schedule did
// and keeps the worker's and Temporal's up/down state.
type fakeStack struct {
	mu             sync.Mutex
	pid            int
	temporalUp     bool
	diesWithServer bool // the worker exits when Temporal stops
	calls          []string
	faults         []string
	failStart      int // StartWorker fails this many times first
}

func (f *fakeStack) record(c string) { f.calls = append(f.calls, c) }

func (f *fakeStack) KillWorker() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pid == 0 {
		return errors.New("not running")
	}
	f.record("kill")
	f.pid = 0
	return nil
}

func (f *fakeStack) StartWorker(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failStart > 0 {
		f.failStart--
		f.record("start-failed")
		return errors.New("worker did not start")
	}
	f.record("start")
	f.pid = 100 + len(f.calls)
	return nil
}

func (f *fakeStack) WorkerPID() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pid
}

func (f *fakeStack) StopTemporal() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("temporal-stop")
	f.temporalUp = false
	if f.diesWithServer {
		f.pid = 0
	}
	return nil
}

func (f *fakeStack) StartTemporal(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("temporal-start")
	f.temporalUp = true
	return nil
}

func (f *fakeStack) SetFaults(_ context.Context, body string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !json.Valid([]byte(body)) {
		return errors.New("invalid JSON")
	}
	f.record("faults")
	f.faults = append(f.faults, body)
	return nil
}

func (f *fakeStack) PauseWorker() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("pause")
	return nil
}

func (f *fakeStack) ResumeWorker() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("resume")
	return nil
}

var _ stackControl = (*fakeStack)(nil)

func fastSchedule() faultConfig {
	return faultConfig{
		Window: 600 * time.Millisecond, MaxWindow: 3 * time.Second,
		KillEvery: 60 * time.Millisecond, KillDown: 5 * time.Millisecond,
		BanAt: 50 * time.Millisecond, BanSeconds: 10,
		TemporalAt: 150 * time.Millisecond, TemporalDown: 10 * time.Millisecond,
		ISPErrorRate: 0.3, HangRate: 0.1, HangDuration: 5 * time.Second, Seed: 1,
	}
}

func TestRunFaultsPlaysTheSchedule(t *testing.T) {
	f := &fakeStack{pid: 1, temporalUp: true}
	done := make(chan struct{})
	close(done)
	log := &faultLog{out: io.Discard}
	began := time.Now()
	runFaults(context.Background(), f, fastSchedule(), done, log)
	if took := time.Since(began); took < 600*time.Millisecond || took > 3*time.Second {
		t.Errorf("schedule took %s, want the 600ms window", took)
	}

	if len(f.faults) < 3 {
		t.Fatalf("faults set %d times, want on, ban and off: %v", len(f.faults), f.faults)
	}
	on, off := f.faults[0], f.faults[len(f.faults)-1]
	for _, want := range []string{`"isp_error_rate":0.3`, `"hang_rate":0.1`, `"hang_duration":"5s"`, `"reject_biz_id_pattern":"^CHP-"`} {
		if !strings.Contains(on, want) {
			t.Errorf("first faults %s lack %s", on, want)
		}
	}
	if !strings.Contains(strings.Join(f.faults, " "), `{"ban_seconds":10}`) {
		t.Errorf("no 10 s ban among %v", f.faults)
	}
	for _, want := range []string{`"isp_error_rate":0`, `"hang_rate":0`, `"ban_seconds":0`} {
		if !strings.Contains(off, want) {
			t.Errorf("last faults %s lack %s", off, want)
		}
	}
	if strings.Contains(off, "reject_biz_id_pattern") {
		t.Errorf("turning faults off touched the reject pattern: %s; parked callbacks must stay parked until retried", off)
	}

	kills := log.count(evKill)
	if kills < 3 {
		t.Errorf("kills = %d in a 600ms window with one every ~60ms, want at least 3", kills)
	}
	if log.count(evWorkerUp) != kills {
		t.Errorf("worker restarts = %d, kills = %d; every kill must be followed by a restart", log.count(evWorkerUp), kills)
	}
	if log.count(evTemporalStop) != 1 || log.count(evTemporalStart) != 1 || !f.temporalUp {
		t.Errorf("temporal stops %d starts %d up=%v, want one restart and the server up", log.count(evTemporalStop), log.count(evTemporalStart), f.temporalUp)
	}
	if f.WorkerPID() == 0 {
		t.Errorf("no worker running after the schedule")
	}
	var lastKill time.Time
	for _, e := range log.snapshot() {
		if e.What == evKill {
			lastKill = e.At
		}
	}
	if lastKill.Sub(began) > 600*time.Millisecond+50*time.Millisecond {
		t.Errorf("last kill at +%s, after the 600ms window", lastKill.Sub(began))
	}
}

func TestRunFaultsWaitsForTheDrivers(t *testing.T) {
	f := &fakeStack{pid: 1, temporalUp: true}
	done := make(chan struct{})
	go func() {
		time.Sleep(900 * time.Millisecond)
		close(done)
	}()
	began := time.Now()
	cfg := fastSchedule()
	runFaults(context.Background(), f, cfg, done, &faultLog{out: io.Discard})
	if took := time.Since(began); took < 900*time.Millisecond {
		t.Fatalf("faults ended after %s, before the drivers finished (900ms)", took)
	}
}

func TestRunFaultsRestartsAWorkerThatDiedWithTemporal(t *testing.T) {
	f := &fakeStack{pid: 1, temporalUp: true, diesWithServer: true, failStart: 1}
	cfg := fastSchedule()
	cfg.KillEvery = 0
	done := make(chan struct{})
	close(done)
	log := &faultLog{out: io.Discard}
	runFaults(context.Background(), f, cfg, done, log)
	if log.count(evWorkerGone) != 1 {
		t.Fatalf("worker-gone events = %d, want 1: %v", log.count(evWorkerGone), f.calls)
	}
	if f.WorkerPID() == 0 {
		t.Fatalf("worker not restarted after it died with Temporal (calls %v)", f.calls)
	}
	if !strings.Contains(strings.Join(f.calls, ","), "start-failed,start") {
		t.Errorf("calls %v: a failed start must be retried", f.calls)
	}
}

// count is how many successful actions of one kind the log holds.
func (l *faultLog) count(what string) int {
	n := 0
	for _, e := range l.snapshot() {
		if e.What == what && e.Error == "" {
			n++
		}
	}
	return n
}
