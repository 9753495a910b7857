package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/insuranceflow/insuranceflow/devstack"
	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/store"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// figure is one number the run reports. An invariant has Want set (always
// 0: it counts violations) and names the biz_ids involved.
type figure struct {
	Group  string   `json:"group"`
	Name   string   `json:"name"`
	Value  int64    `json:"value"`
	Want   *int64   `json:"want,omitempty"`
	OK     bool     `json:"ok"`
	BizIDs []string `json:"biz_ids,omitempty"`
	// Evidence is one line per violation (or per notable case of an
	// informational figure), the first maxEvidence of them.
	Evidence []string `json:"evidence,omitempty"`
}

const maxEvidence = 25

// violations gathers evidence lines by biz_id.
type violations map[string][]string

func (v violations) add(bizID, format string, args ...any) {
	v[bizID] = append(v[bizID], fmt.Sprintf(bizID+": "+format, args...))
}

func (v violations) count() int64 {
	n := 0
	for _, lines := range v {
		n += len(lines)
	}
	return int64(n)
}

func (v violations) evidence() []string {
	var lines []string
	for _, biz := range slices.Sorted(maps.Keys(v)) {
		lines = append(lines, v[biz]...)
	}
	if len(lines) > maxEvidence {
		lines = append(lines[:maxEvidence], fmt.Sprintf("… and %d more", len(lines)-maxEvidence))
	}
	return lines
}

func invariant(group, name string, v violations) figure {
	zero := int64(0)
	n := v.count()
	return figure{Group: group, Name: name, Value: n, Want: &zero, OK: n == 0,
		BizIDs: slices.Sorted(maps.Keys(v)), Evidence: v.evidence()}
}

func info(group, name string, value int64) figure {
	return figure{Group: group, Name: name, Value: value, OK: true}
}

func infoWith(group, name string, v violations) figure {
	f := info(group, name, v.count())
	f.BizIDs = slices.Sorted(maps.Keys(v))
	f.Evidence = v.evidence()
	return f
}

// checkInput is everything the checks read.
type checkInput struct {
	Runs   []*policyRun
	Obs    observation
	Faults []faultEvent
	// TolerateAttemptGaps reports events whose attempts count exceeds
	// their attempt rows without failing the run; see attemptGaps.
	TolerateAttemptGaps bool
	// Operator is what chaos's operator did while the faults ran; Races
	// the close-race phase.
	Operator []opAction
	Races    []*raceRun
	// TOPQPS is the run's TOP_QPS (0: none); topsim must never have seen
	// more in a sliding second, nor answered code 7 for it.
	TOPQPS int
	// Scheduled says which of issue 8's fault classes the run scheduled;
	// each one scheduled must have happened.
	Scheduled scheduledClasses
}

// scheduledClasses are the fault classes a run meant to exercise.
type scheduledClasses struct {
	StoreOutage, Pause, Operator, Races, StopRuns bool
}

// skipped is the request ids an operator skipped during the run: never to
// be delivered, so neither lost nor undelivered.
func (in checkInput) skipped() map[string]bool {
	out := map[string]bool{}
	for _, a := range in.Operator {
		if a.Action == "skip" && a.applied() {
			out[a.RequestID] = true
		}
	}
	return out
}

// Figure groups, in report order.
const (
	groupLoad     = "load"
	groupFaults   = "faults"
	groupAnswers  = "answers"
	groupDelivery = "delivery"
	groupParking  = "parking"
	groupState    = "final state"
	groupStore    = "audit trail"
	groupRaces    = "races and operators"
	groupNotify   = "notifications"
)

// check computes every figure.
func check(in checkInput) []figure {
	var figs []figure
	figs = append(figs, loadFigures(in)...)
	figs = append(figs, faultFigures(in)...)
	figs = append(figs, answerFigures(in)...)
	figs = append(figs, deliveryFigures(in)...)
	figs = append(figs, parkingFigures(in)...)
	figs = append(figs, stateFigures(in)...)
	figs = append(figs, storeFigures(in)...)
	figs = append(figs, raceFigures(in)...)
	figs = append(figs, notificationFigures(in)...)
	return figs
}

func loadFigures(in checkInput) []figure {
	var sent, accepted, dupAnswers, tries, lost int64
	rejected := map[string]int64{}
	failures := map[string]int64{}
	for _, run := range in.Runs {
		accepted += int64(len(run.accepted()))
		for _, o := range run.Outcomes {
			sent++
			tries += int64(o.Tries)
			for cause, n := range o.Failures {
				failures[cause] += int64(n)
			}
			switch {
			case o.LostAnswer:
				lost++
			case o.HTTPStatus == 200:
				dupAnswers++
			case o.HTTPStatus >= 400 && o.Answer.Error != nil:
				rejected[o.Answer.Error.Code]++
			}
		}
	}
	figs := []figure{
		info(groupLoad, "policies", int64(len(in.Runs))),
		info(groupLoad, "events sent", sent),
		info(groupLoad, "events accepted (202)", accepted),
		info(groupLoad, "re-sent events answered as duplicates (200)", dupAnswers),
	}
	for _, code := range slices.Sorted(maps.Keys(rejected)) {
		figs = append(figs, info(groupLoad, "events rejected: "+code, rejected[code]))
	}
	figs = append(figs, info(groupLoad, "HTTP requests to the ingress", tries))
	for _, cause := range slices.Sorted(maps.Keys(failures)) {
		name := "retried after HTTP " + cause
		if cause == "connection" {
			name = "retried after a connection error"
		}
		figs = append(figs, info(groupLoad, name, failures[cause]))
	}
	figs = append(figs, info(groupLoad, "accepted, answer lost, retry answered duplicate", lost))
	return figs
}

func faultFigures(in checkInput) []figure {
	count := func(what string) int64 {
		var n int64
		for _, e := range in.Faults {
			if e.What == what && e.Error == "" {
				n++
			}
		}
		return n
	}
	failed := violations{}
	for _, e := range in.Faults {
		if e.Error != "" {
			failed.add("stack", "%s at t+%s: %s", e.What, e.Offset, e.Error)
		}
	}
	st := in.Obs.Stats
	overLimit := violations{}
	if in.TOPQPS > 0 {
		if st.QPSLimited > 0 {
			overLimit.add("topsim", "%d code-7 answers from flow control (TOP_QPS=%d)", st.QPSLimited, in.TOPQPS)
		}
		if st.MaxPerSecond > in.TOPQPS {
			overLimit.add("topsim", "%d requests within one sliding second, TOP_QPS=%d", st.MaxPerSecond, in.TOPQPS)
		}
	}
	return []figure{
		info(groupFaults, "TOP_QPS (both workers, enforced by topsim)", int64(in.TOPQPS)),
		info(groupFaults, "most TOP calls in any sliding second", int64(st.MaxPerSecond)),
		invariant(groupFaults, "TOP_QPS exceeded (topsim's flow control, injected bans aside)", overLimit),
		info(groupFaults, "worker SIGKILLs", count(evKill)),
		info(groupFaults, "worker found dead (not killed by us)", count(evWorkerGone)),
		info(groupFaults, "Temporal server restarts", count(evTemporalStart)),
		info(groupFaults, "store outages (SQLite locked past the busy timeout)", count(evStoreLocked)),
		info(groupFaults, "worker freezes (SIGSTOP past the heartbeat timeout)", count(evPause)),
		info(groupFaults, "policy runs cancelled from Temporal", count(evCancelRun)),
		info(groupFaults, "policy runs terminated from Temporal", count(evTerminateRun)),
		invariant(groupFaults, "stopped runs the sweeper never resumed (latest run still cancelled or terminated)", in.Obs.StoppedLeft),
		invariant(groupFaults, "runs a sweep started after the policy's run had completed (a sweep that raced a report)", in.Obs.ResumedAfterCompleted),
		info(groupFaults, "topsim requests", st.Requests),
		info(groupFaults, "topsim isp.* errors injected", st.ISPErrors),
		info(groupFaults, "topsim hangs past the client timeout", st.Hangs),
		info(groupFaults, "topsim code-7 ban answers", st.Bans),
		info(groupFaults, "topsim call_success=false (park pattern)", st.Rejected),
		info(groupFaults, "topsim protocol errors", st.ProtocolErrors),
		invariant(groupFaults, "fault actions that failed", failed),
	}
}

func answerFigures(in checkInput) []figure {
	unresolved, mismatch, gaps := violations{}, violations{}, violations{}
	for _, run := range in.Runs {
		biz := run.Plan.BizID
		if run.unresolved() {
			o := run.Outcomes[len(run.Outcomes)-1]
			unresolved.add(biz, "step %d unanswered after %d tries: %s", len(run.Outcomes)-1, o.Tries, o.LastError)
		}
		for _, m := range run.Mismatches {
			mismatch.add(biz, "%s", m)
		}
		for i, a := range run.accepted() {
			if a.Seq != int64(i+1) {
				gaps.add(biz, "acceptance %d has seq %d", i+1, a.Seq)
			}
		}
	}
	return []figure{
		invariant(groupAnswers, "events given up on (no answer)", unresolved),
		invariant(groupAnswers, "answers that differ from the lifecycle rules", mismatch),
		invariant(groupAnswers, "accepted seqs not 1, 2, 3, … per policy", gaps),
	}
}

// eventKey identifies an event by what it says, whatever its request id.
type eventKey struct {
	bizID, occurred string
	stage, status   int
}

func receiptKey(r devstack.Receipt) eventKey {
	var p struct {
		TimeOfOccurrence string `json:"time_of_occurrence"`
	}
	_ = json.Unmarshal(r.Payload, &p) // topsim validated it; an empty time still groups
	return eventKey{bizID: r.BizID, occurred: p.TimeOfOccurrence, stage: int(r.Stage), status: int(r.Status)}
}

func deliveryFigures(in checkInput) []figure {
	type acc struct {
		bizID string
		ev    acceptedEvent
	}
	accepted := map[string]acc{}
	rejected := map[string]string{} // request id → biz_id, for events refused on every send
	for _, run := range in.Runs {
		for _, a := range run.accepted() {
			accepted[a.RequestID] = acc{run.Plan.BizID, a}
		}
		for i, o := range run.Outcomes {
			ev := run.Plan.Steps[i].Event
			if o.HTTPStatus >= 400 && ev.Validate() == nil {
				rejected[ev.WithRequestID().RequestID] = run.Plan.BizID
			}
		}
	}
	for _, r := range in.Races {
		for _, a := range r.Answers {
			if a.accepted() {
				accepted[a.RequestID] = acc{r.BizID, acceptedEvent{Seq: a.Seq, RequestID: a.RequestID, Stage: a.Stage, Status: insurance.StatusSuccess}}
			}
		}
	}
	byReq := map[string][]devstack.Receipt{}
	byBiz := map[string][]devstack.Receipt{}
	byKey := map[eventKey]map[string]bool{}
	for _, r := range in.Obs.Receipts {
		byReq[r.RequestID] = append(byReq[r.RequestID], r)
		byBiz[r.BizID] = append(byBiz[r.BizID], r)
		k := receiptKey(r)
		if byKey[k] == nil {
			byKey[k] = map[string]bool{}
		}
		byKey[k][r.RequestID] = true
	}

	lost := violations{}
	skipped := in.skipped()
	for _, run := range in.Runs {
		for _, a := range run.accepted() {
			if len(byReq[a.RequestID]) == 0 && !skipped[a.RequestID] {
				lost.add(run.Plan.BizID, "seq %d %s/%s request_id %s never reached topsim", a.Seq, a.Stage, a.Status, a.RequestID)
			}
		}
	}

	order, late := violations{}, violations{}
	for _, biz := range slices.Sorted(maps.Keys(byBiz)) {
		seen := map[string]bool{}
		var lastSeq int64
		for _, r := range byBiz[biz] {
			a, ok := accepted[r.RequestID]
			if !ok {
				continue // a phantom, counted below
			}
			if seen[r.RequestID] {
				if a.ev.Seq < lastSeq {
					late.add(biz, "seq %d delivered again (order %d) after seq %d had arrived", a.ev.Seq, r.Order, lastSeq)
				}
				continue
			}
			seen[r.RequestID] = true
			if a.ev.Seq < lastSeq {
				order.add(biz, "seq %d first arrived (order %d) after seq %d", a.ev.Seq, r.Order, lastSeq)
			}
			lastSeq = max(lastSeq, a.ev.Seq)
		}
	}

	// A policy whose run was stopped with its callback at TOP gets every
	// arrival in seq order, repeats included: the run that took over waits
	// for the stopped run's call (its lease) and finds it answered.
	stoppedAtTOP := map[string]bool{}
	var queuedBehind int64
	for _, e := range in.Faults {
		if e.What == evStopAtTOP && e.Error == "" {
			stoppedAtTOP[e.Detail] = true
		}
		if e.What == evStopAtTOPQueued {
			queuedBehind++
		}
	}
	stoppedLate := violations{}
	for _, biz := range slices.Sorted(maps.Keys(stoppedAtTOP)) {
		var highest int64
		for _, r := range byBiz[biz] {
			a, ok := accepted[r.RequestID]
			if !ok {
				continue
			}
			if a.ev.Seq < highest {
				stoppedLate.add(biz, "seq %d arrived (order %d) after seq %d had arrived", a.ev.Seq, r.Order, highest)
			}
			highest = max(highest, a.ev.Seq)
		}
	}

	var repeats int64
	crashed := crashWindows(in.Faults, true)
	unexplained := violations{}
	for req, rs := range byReq {
		if len(rs) < 2 {
			continue
		}
		repeats += int64(len(rs) - 1)
		for i := 1; i < len(rs); i++ {
			if !crashed.between(rs[i-1].ReceivedAt, rs[i].ReceivedAt) {
				unexplained.add(rs[i].BizID, "request_id %s delivered at %s and again at %s with no worker crash or Temporal outage between",
					req, rs[i-1].ReceivedAt.Format(time.StampMilli), rs[i].ReceivedAt.Format(time.StampMilli))
			}
		}
	}
	changedID := violations{}
	for k, ids := range byKey {
		if len(ids) > 1 {
			changedID.add(k.bizID, "stage %d status %d at %s delivered under request_ids %v", k.stage, k.status, k.occurred, slices.Sorted(maps.Keys(ids)))
		}
	}
	phantom := violations{}
	for _, r := range in.Obs.Receipts {
		if _, ok := accepted[r.RequestID]; ok {
			continue
		}
		if biz, ok := rejected[r.RequestID]; ok {
			phantom.add(biz, "callback (order %d) for the rejected event %s/%s request_id %s", r.Order, r.StageName, r.StatusName, r.RequestID)
			continue
		}
		phantom.add(r.BizID, "callback (order %d) with request_id %s that no answer accepted", r.Order, r.RequestID)
	}
	return []figure{
		info(groupDelivery, "callbacks received by topsim", int64(len(in.Obs.Receipts))),
		invariant(groupDelivery, "lost: accepted events never received", lost),
		invariant(groupDelivery, "out of order: first arrivals not in seq order", order),
		info(groupDelivery, "repeated deliveries (at-least-once)", repeats),
		infoWith(groupDelivery, "repeated deliveries after a later seq arrived", late),
		info(groupDelivery, "runs stopped with a callback at TOP and one queued behind it", queuedBehind),
		invariant(groupDelivery, "arrivals after a later seq's at policies stopped with a callback at TOP", stoppedLate),
		infoWith(groupDelivery, "repeated deliveries with no crash or outage between", unexplained),
		invariant(groupDelivery, "repeated deliveries under a different request_id", changedID),
		invariant(groupDelivery, "callbacks for rejected, duplicate or unknown events", phantom),
	}
}

func parkingFigures(in checkInput) []figure {
	expected := map[string]bool{}
	for _, run := range in.Runs {
		if run.Plan.Park && waitsAfterSkips(run, in.skipped()) {
			expected[run.Plan.BizID] = true
		}
	}
	notVisible, notListed, unexpected, retryFailed, stillParked := violations{}, violations{}, violations{}, violations{}, violations{}
	for biz := range expected {
		if !in.Obs.ParkedVisible[biz] {
			notVisible.add(biz, "CallbackState is not \"parked\" in visibility")
		}
		if !in.Obs.ParkedListed[biz] {
			notListed.add(biz, "missing from `starter list --callback-state parked`")
		}
	}
	if in.Obs.ListErr != "" {
		notListed.add("starter", "%s", in.Obs.ListErr)
	}
	for biz := range in.Obs.ParkedVisible {
		if !expected[biz] {
			unexpected.add(biz, "parked, but topsim never rejected it")
		}
	}
	for biz, e := range in.Obs.RetryErr {
		retryFailed.add(biz, "%s", e)
	}
	for biz := range in.Obs.ParkedAfter {
		stillParked.add(biz, "still parked after retry")
	}
	received := map[string]bool{}
	for _, r := range in.Obs.Receipts {
		received[r.RequestID] = true
	}
	undelivered := violations{}
	skipped := in.skipped()
	for _, run := range in.Runs {
		if !expected[run.Plan.BizID] {
			continue
		}
		for _, a := range run.accepted() {
			if !received[a.RequestID] && !skipped[a.RequestID] {
				undelivered.add(run.Plan.BizID, "seq %d not delivered after retry", a.Seq)
			}
		}
	}
	return []figure{
		info(groupParking, "policies parked (call_success=false)", int64(len(expected))),
		invariant(groupParking, "parked, not visible as CallbackState=parked", notVisible),
		invariant(groupParking, "parked, not listed by `starter list --callback-state parked`", notListed),
		invariant(groupParking, "parked without a rejection", unexpected),
		invariant(groupParking, "`starter retry` failures", retryFailed),
		invariant(groupParking, "parked callbacks not delivered after retry", undelivered),
		invariant(groupParking, "still parked after retry", stillParked),
	}
}

// waitsAfterSkips reports whether a run has an accepted event an operator
// did not skip: a park policy with one parks, one without has nothing left.
func waitsAfterSkips(run *policyRun, skipped map[string]bool) bool {
	for _, a := range run.accepted() {
		if !skipped[a.RequestID] {
			return true
		}
	}
	return false
}

// implied folds the accepted events through the lifecycle.
func implied(acc []acceptedEvent) (fsm.State, int, error) {
	sorted := slices.Clone(acc)
	slices.SortFunc(sorted, func(a, b acceptedEvent) int { return int(a.Seq - b.Seq) })
	state, endorsements := fsm.StateNew, 0
	for _, a := range sorted {
		var err error
		if state, endorsements, err = fsm.Next(state, endorsements, a.Stage, a.Status); err != nil {
			return state, endorsements, fmt.Errorf("seq %d: %w", a.Seq, err)
		}
	}
	return state, endorsements, nil
}

func stateFigures(in checkInput) []figure {
	illegal, storeWrong, statusWrong := violations{}, violations{}, violations{}
	for _, run := range in.Runs {
		biz := run.Plan.BizID
		acc := run.accepted()
		if len(acc) == 0 {
			continue
		}
		want, endorsements, err := implied(acc)
		if err != nil {
			illegal.add(biz, "accepted events the lifecycle forbids: %v", err)
			continue
		}
		rec := in.Obs.Store[biz]
		switch {
		case rec.Policy == nil:
			storeWrong.add(biz, "no policy row (%s)", rec.Err)
		case rec.Policy.State != string(want) || rec.Policy.Endorsements != endorsements:
			storeWrong.add(biz, "store says %s with %d endorsements, events imply %s with %d",
				rec.Policy.State, rec.Policy.Endorsements, want, endorsements)
		}
		st, ok := in.Obs.Status[biz]
		switch {
		case !ok:
			statusWrong.add(biz, "no status: %s", in.Obs.StatusErr[biz])
		case st.State != string(want) || st.Endorsements != endorsements:
			statusWrong.add(biz, "status says %s with %d endorsements, events imply %s with %d",
				st.State, st.Endorsements, want, endorsements)
		}
	}
	return []figure{
		invariant(groupState, "accepted sequences the lifecycle forbids", illegal),
		invariant(groupState, "store state differs from the accepted events'", storeWrong),
		invariant(groupState, "status (workflow) state differs from the accepted events'", statusWrong),
	}
}

func storeFigures(in checkInput) []figure {
	crashed := crashWindows(in.Faults, false)
	missing, noDelivered, counter, countMismatch := violations{}, violations{}, violations{}, violations{}
	cutOff, noCrash, unrecordedDeliveries := violations{}, violations{}, violations{}
	var rows, deliveredRows int64
	receipts := map[string]int{}
	for _, r := range in.Obs.Receipts {
		receipts[r.RequestID]++
	}
	for _, run := range in.Runs {
		biz := run.Plan.BizID
		rec := in.Obs.Store[biz]
		events := map[int64]store.Event{}
		for _, e := range rec.Events {
			events[e.Seq] = e
		}
		attempts := map[int64][]store.Attempt{}
		for _, a := range rec.Attempts {
			attempts[a.Seq] = append(attempts[a.Seq], a)
			rows++
			if a.Class == store.ClassDelivered {
				deliveredRows++
			}
		}
		for _, acc := range run.accepted() {
			e, ok := events[acc.Seq]
			if !ok || e.RequestID != acc.RequestID {
				missing.add(biz, "seq %d (request_id %s) has no event row%s", acc.Seq, acc.RequestID, errSuffix(rec.Err))
				continue
			}
			rs := attempts[acc.Seq]
			delivered := 0
			for _, a := range rs {
				if a.Class == store.ClassDelivered {
					delivered++
				}
			}
			if receipts[acc.RequestID] > 0 && (delivered == 0 || e.Callback != string(workflows.EventDelivered) || e.DeliveredAt == nil) {
				noDelivered.add(biz, "seq %d reached topsim but the store has callback=%s, %d attempt rows, %d delivered",
					acc.Seq, e.Callback, len(rs), delivered)
			}
			if n := receipts[acc.RequestID] - delivered; n > 0 && delivered > 0 {
				unrecordedDeliveries.add(biz, "seq %d: topsim took it %d times, %d delivered rows", acc.Seq, receipts[acc.RequestID], delivered)
			}
			if len(rs) != e.Attempts {
				countMismatch.add(biz, "seq %d: attempts = %d, %d attempt rows", acc.Seq, e.Attempts, len(rs))
			}
			checkAttemptRows(biz, e, rs, crashed, counter, cutOff, noCrash)
		}
	}
	return []figure{
		info(groupStore, "attempt rows", rows),
		info(groupStore, "delivered attempt rows", deliveredRows),
		invariant(groupStore, "accepted events with no row", missing),
		invariant(groupStore, "delivered events without a delivered attempt row", noDelivered),
		invariant(groupStore, "attempt rows numbered twice or above the event's count", counter),
		attemptGaps(in.TolerateAttemptGaps, countMismatch),
		infoWith(groupStore, "attempt numbers with no row: worker SIGKILLed during the attempt", cutOff),
		infoWith(groupStore, "attempt numbers with no row: no crash (Temporal started it, no worker ran it)", noCrash),
		infoWith(groupStore, "deliveries topsim took with no delivered row", unrecordedDeliveries),
	}
}

// attemptGaps is the figure for events whose attempts count differs from
// their attempt rows. The store numbers attempts with Temporal's attempt
// counter; every attempt writes a "started" row before it calls TOP and
// fills "lost" rows for numbers no worker finished, so any gap is a
// violation. tolerate makes it informational, for investigating a
// regression without failing the run.
func attemptGaps(tolerate bool, v violations) figure {
	const name = "events whose attempts count differs from their attempt rows"
	if tolerate {
		return infoWith(groupStore, name+" (tolerated)", v)
	}
	return invariant(groupStore, name, v)
}

// checkAttemptRows compares an event's attempt rows with its attempts
// count. Each number from 1 to the count should have one row; for a number
// with none it tells whether a worker was killed while that attempt could
// have been running (between its neighbours' starts).
func checkAttemptRows(biz string, e store.Event, rs []store.Attempt, crashed crashSet, counter, cutOff, noCrash violations) {
	byNum := map[int]store.Attempt{}
	for _, a := range rs {
		if _, dup := byNum[a.Attempt]; dup || a.Attempt > e.Attempts || a.Attempt < 1 {
			counter.add(biz, "seq %d attempt %d recorded twice or outside 1..%d", e.Seq, a.Attempt, e.Attempts)
		}
		byNum[a.Attempt] = a
	}
	for n := 1; n <= e.Attempts; n++ {
		if _, ok := byNum[n]; ok {
			continue
		}
		from, to := e.AcceptedAt, time.Now()
		for m := n - 1; m >= 1; m-- {
			if a, ok := byNum[m]; ok {
				from = a.StartedAt
				break
			}
		}
		for m := n + 1; m <= e.Attempts; m++ {
			if a, ok := byNum[m]; ok {
				to = a.StartedAt
				break
			}
		}
		window := fmt.Sprintf("between %s and %s", from.Format(time.StampMilli), to.Format(time.StampMilli))
		if crashed.between(from, to) {
			cutOff.add(biz, "seq %d attempt %d of %d: no row; worker killed %s", e.Seq, n, e.Attempts, window)
		} else {
			noCrash.add(biz, "seq %d attempt %d of %d: no row and no worker crash %s", e.Seq, n, e.Attempts, window)
		}
	}
}

func errSuffix(err string) string {
	if err == "" {
		return ""
	}
	return " (" + err + ")"
}

// crashSet holds the moments the worker died or Temporal went away.
type crashSet []time.Time

// crashWindows collects the SIGKILLs and dead workers: what can cut an
// attempt off before it records itself. With outages it adds the Temporal
// stops, which explain a repeated delivery too (an activity completion
// lost while the server is down is retried, re-sending the callback) but
// not a missing attempt row (the worker keeps running and records).
func crashWindows(events []faultEvent, outages bool) crashSet {
	var out crashSet
	for _, e := range events {
		if e.Error != "" {
			continue
		}
		switch {
		case e.What == evKill, e.What == evWorkerGone, outages && e.What == evTemporalStop:
			out = append(out, e.At)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}

func (c crashSet) between(from, to time.Time) bool {
	for _, t := range c {
		if !t.Before(from) && !t.After(to) {
			return true
		}
	}
	return false
}

// failures lists the invariants that failed, with their biz_ids.
func failures(figs []figure) []string {
	var out []string
	for _, f := range figs {
		if !f.OK {
			out = append(out, fmt.Sprintf("%s = %d (want 0); biz_ids: %s", f.Name, f.Value, strings.Join(f.BizIDs, ", ")))
		}
	}
	return out
}
