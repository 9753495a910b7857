package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// stackControl is what the fault schedule does to the stack; devstack's
// Stack provides it.
type stackControl interface {
	KillWorker() error
	StartWorker(ctx context.Context) error
	WorkerPID() int
	StopTemporal() error
	StartTemporal(ctx context.Context) error
	SetFaults(ctx context.Context, faultsJSON string) error
	PauseWorker() error
	ResumeWorker() error
}

// faultConfig is the fault schedule of one run.
type faultConfig struct {
	// Window is how long the worker is killed, and how long topsim's
	// faults last at least: they last until the business systems have had
	// every event answered, at most MaxWindow. Kills stop with the window
	// because each one strands a callback attempt until its heartbeat
	// times out (10 s); later kills would only add to the wait.
	Window    time.Duration
	MaxWindow time.Duration
	// KillEvery is the mean time between worker SIGKILLs (±25%);
	// KillDown is how long the worker stays dead.
	KillEvery time.Duration
	KillDown  time.Duration
	// BanAt starts one code-7 ban of BanSeconds.
	BanAt      time.Duration
	BanSeconds int
	// TemporalAt stops the Temporal dev server for TemporalDown.
	TemporalAt   time.Duration
	TemporalDown time.Duration
	// StoreOutageAt starts store outages of StoreOutageFor each, through
	// LockStore (the SQLite file locked, as a long write or a backup would
	// hold it): deliveries, parks and operator actions meet a store that
	// refuses writes. None when LockStore is nil.
	StoreOutageAt  []time.Duration
	StoreOutageFor time.Duration
	LockStore      func(ctx context.Context, d time.Duration) error
	// PauseAt freezes the worker (SIGSTOP) for PauseFor, longer than the
	// delivery heartbeat timeout, then lets it go on (SIGCONT): its
	// in-flight attempts are retried elsewhere meanwhile, and must not call
	// TOP when it wakes (the fencing case). Zero PauseFor: no pause.
	PauseAt  time.Duration
	PauseFor time.Duration
	// StopRunEvery is the time between runs cancelled or terminated from
	// Temporal, by StopRun, while the window lasts; zero or a nil StopRun:
	// none.
	StopRunEvery time.Duration
	StopRun      func(ctx context.Context) (what, bizID string, err error)
	// topsim's injected faults for the whole window.
	ISPErrorRate float64
	HangRate     float64
	HangDuration time.Duration
	Seed         uint64
}

// topsimFaults is the body of POST /_sim/faults.
type topsimFaults struct {
	ISPErrorRate       *float64 `json:"isp_error_rate,omitempty"`
	HangRate           *float64 `json:"hang_rate,omitempty"`
	HangDuration       string   `json:"hang_duration,omitempty"`
	HTTP502Rate        *float64 `json:"http502_rate,omitempty"`
	Latency            string   `json:"latency,omitempty"`
	BanSeconds         *int     `json:"ban_seconds,omitempty"`
	RejectBizIDPattern *string  `json:"reject_biz_id_pattern,omitempty"`
}

func (f topsimFaults) json() string {
	b, _ := json.Marshal(f) // a struct of strings and numbers always encodes
	return string(b)
}

func ptr[T any](v T) *T { return &v }

// faultsOn is the injection for the fault window: the rates, and the reject
// pattern that parks the park policies.
func (c faultConfig) faultsOn() string {
	return topsimFaults{
		ISPErrorRate: ptr(c.ISPErrorRate), HangRate: ptr(c.HangRate),
		HangDuration: c.HangDuration.String(), RejectBizIDPattern: ptr(rejectPattern),
	}.json()
}

// faultsOff ends every injected fault and any running ban; the reject
// pattern stays, so parked callbacks stay parked until the operator step.
func faultsOff() string {
	return topsimFaults{ISPErrorRate: ptr(0.0), HangRate: ptr(0.0), HTTP502Rate: ptr(0.0), Latency: "0s", BanSeconds: ptr(0)}.json()
}

// rejectOff removes the reject pattern.
func rejectOff() string { return topsimFaults{RejectBizIDPattern: ptr("")}.json() }

// faultEvent is one thing the schedule did.
type faultEvent struct {
	At     time.Time `json:"at"`
	Offset string    `json:"offset"` // since the window began
	What   string    `json:"what"`
	Detail string    `json:"detail,omitempty"`
	Error  string    `json:"error,omitempty"`
}

// What a faultEvent records.
const (
	evFaultsOn      = "faults on"
	evFaultsOff     = "faults off"
	evKill          = "worker SIGKILL"
	evWorkerUp      = "worker up"
	evWorkerGone    = "worker found dead"
	evBan           = "ban"
	evTemporalStop  = "temporal stop"
	evTemporalStart = "temporal up"
	evStoreLocked   = "store locked"
	evStoreUnlocked = "store unlocked"
	evPause         = "worker SIGSTOP"
	evResume        = "worker SIGCONT"
	evCancelRun     = "run cancelled"
	evTerminateRun  = "run terminated"
	evStopAtTOP     = "run stopped with its callback at TOP"
	// evStopAtTOPQueued follows an evStopAtTOP whose policy had a callback
	// queued behind the one at TOP.
	evStopAtTOPQueued = "run stopped with its callback at TOP and one queued behind it"
)

// faultLog records the schedule's actions, for the report and to tell
// whether a crash explains a gap in the audit trail.
type faultLog struct {
	mu     sync.Mutex
	start  time.Time
	events []faultEvent
	out    io.Writer
}

// began is when the schedule began (zero before it did).
func (l *faultLog) began() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.start
}

func (l *faultLog) add(what, detail string, err error) { l.addAt(time.Now(), what, detail, err) }

// addAt records an action that began at at.
func (l *faultLog) addAt(at time.Time, what, detail string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := faultEvent{At: at, Offset: at.Sub(l.start).Round(10 * time.Millisecond).String(), What: what, Detail: detail}
	if err != nil {
		e.Error = err.Error()
	}
	l.events = append(l.events, e)
	line := fmt.Sprintf("chaos: t+%s %s", e.Offset, what)
	if detail != "" {
		line += " (" + detail + ")"
	}
	if err != nil {
		line += ": " + err.Error()
	}
	fmt.Fprintln(l.out, line)
}

func (l *faultLog) snapshot() []faultEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]faultEvent(nil), l.events...)
}

// runFaults plays the fault schedule until the window has passed and
// drivingDone is closed (or MaxWindow passes), then turns every injected
// fault off and makes sure Temporal and a worker are up.
func runFaults(ctx context.Context, ctl stackControl, cfg faultConfig, drivingDone <-chan struct{}, log *faultLog) {
	rng := rand.New(rand.NewPCG(cfg.Seed, 0xfa))
	start := time.Now()
	log.mu.Lock()
	log.start = start
	log.mu.Unlock()
	log.add(evFaultsOn, cfg.faultsOn(), ctl.SetFaults(ctx, cfg.faultsOn()))

	jitter := func() time.Duration {
		return cfg.KillEvery*3/4 + time.Duration(rng.Int64N(int64(cfg.KillEvery/2)+1))
	}
	nextKill := start.Add(jitter())
	nextStop := start.Add(cfg.StopRunEvery)
	banned, restarted := cfg.BanSeconds == 0, cfg.TemporalDown == 0
	paused := cfg.PauseFor == 0
	outages := 0
	if cfg.LockStore == nil {
		outages = len(cfg.StoreOutageAt)
	}
	var side sync.WaitGroup // store outages and the pause run beside the schedule
	// No kills while the worker is frozen: the point of the pause is the
	// frozen worker waking up after Temporal gave its attempts to another.
	var pausing atomic.Bool
	defer side.Wait()
	for ctx.Err() == nil {
		elapsed := time.Since(start)
		driven := isClosed(drivingDone)
		if (elapsed >= cfg.Window && driven && banned && restarted && paused && outages == len(cfg.StoreOutageAt)) || elapsed >= cfg.MaxWindow {
			break
		}
		switch {
		case outages < len(cfg.StoreOutageAt) && elapsed >= cfg.StoreOutageAt[outages]:
			outages++
			side.Go(func() { lockStore(ctx, cfg, log) })
		case !paused && elapsed >= cfg.PauseAt:
			paused = true
			pausing.Store(true)
			side.Go(func() {
				defer pausing.Store(false)
				pauseWorker(ctx, ctl, cfg.PauseFor, log)
			})
		case !banned && elapsed >= cfg.BanAt:
			banned = true
			log.add(evBan, fmt.Sprintf("%d s code 7", cfg.BanSeconds),
				ctl.SetFaults(ctx, topsimFaults{BanSeconds: ptr(cfg.BanSeconds)}.json()))
		case !restarted && elapsed >= cfg.TemporalAt:
			restarted = true
			restartTemporal(ctx, ctl, cfg.TemporalDown, log)
			nextKill = time.Now().Add(jitter())
		case cfg.StopRun != nil && cfg.StopRunEvery > 0 && elapsed < cfg.Window && time.Now().After(nextStop):
			stopRun(ctx, cfg.StopRun, log)
			nextStop = time.Now().Add(cfg.StopRunEvery)
		case cfg.KillEvery > 0 && elapsed < cfg.Window && time.Now().After(nextKill) && !pausing.Load():
			killWorker(ctx, ctl, cfg.KillDown, log)
			nextKill = time.Now().Add(jitter())
		default:
			_ = sleepCtx(ctx, 20*time.Millisecond)
		}
	}
	log.add(evFaultsOff, faultsOff(), ctl.SetFaults(context.WithoutCancel(ctx), faultsOff()))
	ensureWorker(context.WithoutCancel(ctx), ctl, log)
}

func killWorker(ctx context.Context, ctl stackControl, down time.Duration, log *faultLog) {
	if pid := ctl.WorkerPID(); pid == 0 {
		log.add(evWorkerGone, "before a scheduled kill", nil)
	} else {
		at := time.Now()
		log.addAt(at, evKill, fmt.Sprintf("pid %d", pid), ctl.KillWorker())
		_ = sleepCtx(ctx, down)
	}
	ensureWorker(ctx, ctl, log)
}

// stopRun cancels or terminates one policy's run; a turn that found none
// to stop is not a fault action, so it is not logged.
func stopRun(ctx context.Context, stop func(ctx context.Context) (string, string, error), log *faultLog) {
	at := time.Now()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	what, biz, err := stop(cctx)
	if errors.Is(err, errNoOpenRun) {
		return
	}
	log.addAt(at, what, biz, err)
}

func lockStore(ctx context.Context, cfg faultConfig, log *faultLog) {
	at := time.Now()
	err := cfg.LockStore(ctx, cfg.StoreOutageFor)
	log.addAt(at, evStoreLocked, cfg.StoreOutageFor.String(), err)
	log.add(evStoreUnlocked, "", nil)
}

// pauseWorker freezes the worker for d. A kill meanwhile ends the pause
// early (SIGKILL reaches a stopped process); SIGCONT then finds no worker,
// which is not an error of the schedule.
func pauseWorker(ctx context.Context, ctl stackControl, d time.Duration, log *faultLog) {
	pid := ctl.WorkerPID()
	if pid == 0 {
		log.add(evWorkerGone, "before the scheduled pause", nil)
		return
	}
	log.add(evPause, fmt.Sprintf("pid %d for %s", pid, d), ctl.PauseWorker())
	_ = sleepCtx(ctx, d)
	if ctl.WorkerPID() != pid {
		log.add(evResume, "the paused worker was replaced meanwhile", nil)
		return
	}
	log.add(evResume, fmt.Sprintf("pid %d", pid), ctl.ResumeWorker())
}

func restartTemporal(ctx context.Context, ctl stackControl, down time.Duration, log *faultLog) {
	at := time.Now()
	log.addAt(at, evTemporalStop, "SQLite file kept", ctl.StopTemporal())
	_ = sleepCtx(ctx, down)
	began := time.Now()
	var err error
	for range 3 {
		if err = ctl.StartTemporal(context.WithoutCancel(ctx)); err == nil {
			break
		}
	}
	log.add(evTemporalStart, fmt.Sprintf("after %s", time.Since(began).Round(time.Millisecond)), err)
	if ctl.WorkerPID() == 0 {
		log.add(evWorkerGone, "during the Temporal outage", nil)
		ensureWorker(ctx, ctl, log)
	}
}

// ensureWorker starts the worker if none runs: after a kill, or when one
// died by itself (which the log records as such).
func ensureWorker(ctx context.Context, ctl stackControl, log *faultLog) {
	if ctl.WorkerPID() != 0 {
		return
	}
	began := time.Now()
	var err error
	for range 3 {
		if err = ctl.StartWorker(context.WithoutCancel(ctx)); err == nil {
			break
		}
	}
	log.add(evWorkerUp, fmt.Sprintf("pid %d after %s", ctl.WorkerPID(), time.Since(began).Round(time.Millisecond)), err)
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
