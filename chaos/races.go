package main

// Issue 8's fault classes: operator actions while faults run (named by
// seq, sent twice at once as a retrying proxy would), racing reports around
// run closes, a locked store and a frozen worker; and the invariants that
// hold them to the promise.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/insuranceflow/insuranceflow/devstack"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/store"
)

// operate posts a retry or skip naming seq, with key as its
// Idempotency-Key.
func (c *ingressClient) operate(ctx context.Context, bizID, action string, seq int64, reason, key string) (reply, error) {
	body, _ := json.Marshal(map[string]any{"seq": seq, "reason": reason}) // a map of a number and a string always encodes
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		c.base+"/v1/policies/"+url.PathEscape(bizID)+"/callbacks/"+action, bytes.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	return c.do(req)
}

// parkedHead reads a policy's status and returns its parked callback's seq
// and request id, or 0 when none is parked.
func (c *ingressClient) parkedHead(ctx context.Context, bizID string) (int64, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/policies/"+url.PathEscape(bizID), nil)
	if err != nil {
		return 0, "", err
	}
	rep, err := c.do(req)
	if err != nil {
		return 0, "", err
	}
	if rep.Status != http.StatusOK {
		return 0, "", fmt.Errorf("GET /v1/policies/%s: HTTP %d", bizID, rep.Status)
	}
	var st struct {
		Events []struct {
			Seq       int64  `json:"seq"`
			RequestID string `json:"request_id"`
			Callback  string `json:"callback"`
		} `json:"events"`
	}
	if err := json.Unmarshal(rep.Body, &st); err != nil {
		return 0, "", err
	}
	for _, e := range st.Events {
		if e.Callback == "parked" {
			return e.Seq, e.RequestID, nil
		}
	}
	return 0, "", nil
}

// opAnswer is one answer to an operator action.
type opAnswer struct {
	Status   int    `json:"status"`
	Code     string `json:"code,omitempty"`
	Seq      int64  `json:"seq,omitempty"`
	Callback string `json:"callback,omitempty"`
	Repeated bool   `json:"repeated,omitempty"`
	Err      string `json:"err,omitempty"`
}

// opAction is one operator decision, sent twice at once.
type opAction struct {
	BizID     string
	Seq       int64
	RequestID string
	Action    string // "retry" or "skip"
	// Reason is unique to the action, so the audit trail's rows of it can
	// be told from every other action's on the same callback.
	Reason   string
	Sent     time.Time
	Answered time.Time
	Answers  []opAnswer
}

// applied reports whether the answers say the action was applied: a 200,
// or a repeat's 200 (the first send was applied, but its answer was lost
// with a killed ingress and the re-send was told so).
// pendingOnly reports whether every answer was 409 operator_action_pending.
func (a opAction) pendingOnly() bool {
	for _, r := range a.Answers {
		if r.Code != "operator_action_pending" {
			return false
		}
	}
	return len(a.Answers) > 0
}

func (a opAction) applied() bool {
	for _, r := range a.Answers {
		if r.Status == http.StatusOK {
			return true
		}
	}
	return false
}

// operatorLog collects the operator actions chaos took.
type operatorLog struct{ syncList[opAction] }

// skipped is the request ids of the callbacks an operator skipped: they
// are never to be delivered.
func (l *operatorLog) skipped() map[string]bool {
	out := map[string]bool{}
	for _, a := range l.snapshot() {
		if a.Action == "skip" && a.applied() {
			out[a.RequestID] = true
		}
	}
	return out
}

// operateDuringFaults acts on parked callbacks while the faults run, until
// done: every `every`, each park policy whose head is parked gets an action
// naming that head's seq, sent twice at once. Some policies' first parked
// callback is skipped (see operatorAction), the rest retried (which parks
// them again while the reject pattern holds). Each policy is acted on at
// most twice, so the final operator step still has parked callbacks to
// retry.
func operateDuringFaults(ctx context.Context, ingress *ingressClient, plans []policyPlan, every time.Duration, done <-chan struct{}, log *operatorLog) {
	acted := map[string]int{}
	skips := 0 // applied
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, p := range plans {
			biz := p.BizID
			if !p.Park || acted[biz] >= 2 || isClosed(done) {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			seq, reqID, err := ingress.parkedHead(cctx, biz)
			cancel()
			if err != nil || seq == 0 {
				continue
			}
			action := operatorAction(len(acted), acted[biz] == 0, skips)
			acted[biz]++
			n := len(log.snapshot()) + 1
			reason := fmt.Sprintf("chaos: %s while faults run (action %d)", action, n)
			key := fmt.Sprintf("%s.%s.%d", biz, action, n)
			a := operateTwice(ctx, ingress, biz, action, seq, reqID, reason, key)
			if action == "skip" && a.applied() {
				skips++
			}
			log.add(a)
		}
	}
}

// operatorAction is the action for a policy's parked head: "skip" for the
// first action on a policy while no skip has been applied yet, and then on
// every third policy acted on; "retry" otherwise. A skip while the faults
// run is a fault class the run must exercise, and which park policies get
// parked in a short run depends on timing (a paused worker, a restarted
// server), so the first policy acted on is skipped, not one fixed by its
// place in the plan.
func operatorAction(policiesActedOn int, firstOnPolicy bool, skipsApplied int) string {
	if firstOnPolicy && (skipsApplied == 0 || policiesActedOn%3 == 0) {
		return "skip"
	}
	return "retry"
}

// operateTwice sends the same action twice at once, as a client that
// retries on a slow answer would: the same body and the same
// Idempotency-Key.
func operateTwice(ctx context.Context, ingress *ingressClient, biz, action string, seq int64, reqID, reason, key string) opAction {
	a := opAction{BizID: biz, Seq: seq, RequestID: reqID, Action: action, Reason: reason, Sent: time.Now()}
	answers := make([]opAnswer, 2)
	var wg sync.WaitGroup
	for k := range answers {
		wg.Go(func() {
			// Like the business system, re-send after a broken connection
			// or a 503 (the ingress dies with each worker kill) until an
			// answer comes: a re-send of an applied action must be told it
			// was, and must change nothing.
			deadline := time.Now().Add(2 * time.Minute)
			for {
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				rep, err := ingress.operate(cctx, biz, action, seq, reason, key)
				cancel()
				answers[k] = decodeOpAnswer(rep, err)
				if (err == nil && rep.Status < 500) || time.Now().After(deadline) || ctx.Err() != nil {
					return
				}
				_ = sleepCtx(ctx, 500*time.Millisecond)
			}
		})
	}
	wg.Wait()
	a.Answered = time.Now()
	a.Answers = answers
	return a
}

func decodeOpAnswer(rep reply, err error) opAnswer {
	if err != nil {
		return opAnswer{Err: err.Error()}
	}
	ans := opAnswer{Status: rep.Status}
	var body struct {
		Seq      int64  `json:"seq"`
		Callback string `json:"callback"`
		Repeated bool   `json:"repeated"`
		Error    struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(rep.Body, &body) == nil {
		ans.Seq, ans.Callback, ans.Repeated, ans.Code = body.Seq, body.Callback, body.Repeated, body.Error.Code
	}
	return ans
}

// sqliteLocker returns a LockStore for the stack's SQLite store: it holds
// an exclusive write transaction for d, so every writer waits out its busy
// timeout and fails ("database is locked") meanwhile.
func sqliteLocker(databaseURL string) (func(ctx context.Context, d time.Duration) error, error) {
	path, ok := strings.CutPrefix(databaseURL, "sqlite://")
	if !ok {
		return nil, fmt.Errorf("store outages need the SQLite store, not %s", strings.SplitN(databaseURL, ":", 2)[0])
	}
	return func(ctx context.Context, d time.Duration) error {
		db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=30000")
		if err != nil {
			return err
		}
		defer db.Close()
		conn, err := db.Conn(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		_ = sleepCtx(ctx, d)
		_, err = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		return err
	}, nil
}

// raceRun is one policy of the close-race phase and every answer it got.
type raceRun struct {
	BizID    string
	Variant  string
	Answers  []raceAnswer
	Problems []string // sends that got no usable answer
}

// raceAnswer is one event sent in the race phase and its answer.
type raceAnswer struct {
	Stage     insurance.Stage
	Status    int
	Code      string
	Seq       int64
	RequestID string
	State     string
}

func (a raceAnswer) accepted() bool {
	return a.Status == http.StatusAccepted || a.Status == http.StatusOK
}

// raceEvent builds a race-phase event at hour h.
func raceEvent(bizID string, stage insurance.Stage, h int) []byte {
	b, _ := json.Marshal(map[string]any{ // strings and numbers always encode
		"biz_id": bizID, "stage": int(stage), "status": 1, "insurance_type": 1, "insurance_company": 1,
		"policy_number": "P-" + bizID, "bank_account_manager_name": "王小丫",
		"time_of_occurrence": fmt.Sprintf("2025-05-01 %02d:00:00", h),
	})
	return b
}

func sendRace(ctx context.Context, c *ingressClient, body []byte, stage insurance.Stage) (raceAnswer, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rep, err := c.report(cctx, body)
	if err != nil {
		return raceAnswer{}, err
	}
	a := raceAnswer{Stage: stage, Status: rep.Status}
	var ans struct {
		Seq       int64  `json:"seq"`
		RequestID string `json:"request_id"`
		State     string `json:"state"`
		Error     struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(rep.Body, &ans) == nil {
		a.Seq, a.RequestID, a.State, a.Code = ans.Seq, ans.RequestID, ans.State, ans.Error.Code
	}
	if rep.Status >= 500 {
		return a, fmt.Errorf("HTTP %d %s", rep.Status, a.Code)
	}
	return a, nil
}

// closeRaces plays the race-close phase: n policies whose runs close after
// two seconds idle (the runs are started through a with IDLE_TIMEOUT=2s),
// each then sent events from two clients at once, in three variants:
//
//   - "endorse-vs-cancel": an endorse and a cancel race into a closed run;
//   - "same-event": the same endorse from both clients into a closed run;
//   - "after-cancel": a cancel is accepted, and both clients send an
//     endorse while the run completes.
func closeRaces(ctx context.Context, a, b *ingressClient, closed func(ctx context.Context, bizID string) bool, tag string, n int) []*raceRun {
	runs := make([]*raceRun, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range n {
		variant := []string{"endorse-vs-cancel", "same-event", "after-cancel"}[i%3]
		r := &raceRun{BizID: fmt.Sprintf("CHR-%s-%03d", tag, i), Variant: variant}
		runs[i] = r
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			playRace(ctx, a, b, closed, r)
		})
	}
	wg.Wait()
	return runs
}

func playRace(ctx context.Context, a, b *ingressClient, closed func(context.Context, string) bool, r *raceRun) {
	note := func(ans raceAnswer, err error) {
		if err != nil {
			r.Problems = append(r.Problems, fmt.Sprintf("%s: %v", ans.Stage, err))
		}
		r.Answers = append(r.Answers, ans)
	}
	for h, stage := range []insurance.Stage{insurance.StagePreInsure, insurance.StageUnderwrite, insurance.StageInsure} {
		note(sendRace(ctx, a, raceEvent(r.BizID, stage, 9+h), stage))
	}
	waitClosed := func() {
		deadline := time.Now().Add(45 * time.Second)
		for time.Now().Before(deadline) && ctx.Err() == nil && !closed(ctx, r.BizID) {
			_ = sleepCtx(ctx, 200*time.Millisecond)
		}
	}
	race := func(x, y []byte, sx, sy insurance.Stage) {
		var ax, ay raceAnswer
		var ex, ey error
		var wg sync.WaitGroup
		wg.Go(func() { ax, ex = sendRace(ctx, a, x, sx) })
		wg.Go(func() { ay, ey = sendRace(ctx, b, y, sy) })
		wg.Wait()
		note(ax, ex)
		note(ay, ey)
	}
	endorse := raceEvent(r.BizID, insurance.StageEndorse, 13)
	cancel := raceEvent(r.BizID, insurance.StageCancel, 14)
	switch r.Variant {
	case "endorse-vs-cancel":
		waitClosed()
		race(endorse, cancel, insurance.StageEndorse, insurance.StageCancel)
	case "same-event":
		waitClosed()
		race(endorse, endorse, insurance.StageEndorse, insurance.StageEndorse)
	case "after-cancel":
		note(sendRace(ctx, a, cancel, insurance.StageCancel))
		race(endorse, endorse, insurance.StageEndorse, insurance.StageEndorse)
	}
}

// raceFigures are issue 8's invariants: over the driven policies and the
// race phase, and over the operator actions chaos took.
func raceFigures(in checkInput) []figure {
	type accepted struct {
		seq    int64
		req    string
		stage  insurance.Stage
		status insurance.Status
	}
	byBiz := map[string][]accepted{}
	for _, run := range in.Runs {
		for _, a := range run.accepted() {
			byBiz[run.Plan.BizID] = append(byBiz[run.Plan.BizID], accepted{a.Seq, a.RequestID, a.Stage, a.Status})
		}
	}
	problems := violations{}
	for _, r := range in.Races {
		for _, p := range r.Problems {
			problems.add(r.BizID, "%s", p)
		}
		for _, a := range r.Answers {
			if a.accepted() {
				byBiz[r.BizID] = append(byBiz[r.BizID], accepted{a.Seq, a.RequestID, a.Stage, insurance.StatusSuccess})
			}
		}
	}

	afterCancel, reused := violations{}, violations{}
	for biz, acc := range byBiz {
		cancelSeq := int64(0)
		seqReq := map[int64]string{}
		for _, a := range acc {
			// A failed cancel leaves the policy insured; only a successful
			// one ends it.
			if a.stage == insurance.StageCancel && a.status == insurance.StatusSuccess && (cancelSeq == 0 || a.seq < cancelSeq) {
				cancelSeq = a.seq
			}
			if prev, ok := seqReq[a.seq]; ok && prev != a.req {
				reused.add(biz, "seq %d answered for request_ids %s and %s", a.seq, prev, a.req)
			}
			seqReq[a.seq] = a.req
		}
		for _, a := range acc {
			if cancelSeq > 0 && a.seq > cancelSeq {
				afterCancel.add(biz, "%s accepted as seq %d after the cancel (seq %d)", a.stage, a.seq, cancelSeq)
			}
		}
		// The store holds exactly the accepted events, each under its seq.
		if rec, ok := in.Obs.Store[biz]; ok {
			for _, e := range rec.Events {
				if req, ok := seqReq[e.Seq]; ok && req != e.RequestID {
					reused.add(biz, "store seq %d holds request_id %s, the answer said %s", e.Seq, e.RequestID, req)
				}
			}
		}
	}

	// Every arrival of seq N comes before the first arrival of N+1, retries
	// included: a stale attempt must not deliver late.
	late := violations{}
	seqOf := map[string]int64{}
	for biz, acc := range byBiz {
		for _, a := range acc {
			seqOf[biz+"\x00"+a.req] = a.seq
		}
	}
	highest := map[string]int64{}
	for _, rc := range in.Obs.Receipts {
		seq, ok := seqOf[rc.BizID+"\x00"+rc.RequestID]
		if !ok {
			continue
		}
		if h := highest[rc.BizID]; seq < h {
			late.add(rc.BizID, "seq %d arrived (order %d) after seq %d had arrived", seq, rc.Order, h)
		}
		highest[rc.BizID] = max(highest[rc.BizID], seq)
	}

	ops := in.Operator
	wrongSeq, notOnce, skippedAgain := violations{}, violations{}, violations{}
	for _, a := range ops {
		for _, ans := range a.Answers {
			if ans.Status == http.StatusOK && ans.Seq != a.Seq {
				wrongSeq.add(a.BizID, "%s of seq %d answered for seq %d", a.Action, a.Seq, ans.Seq)
			}
			if ans.Err != "" || ans.Status >= 500 {
				notOnce.add(a.BizID, "%s of seq %d: no usable answer (%d %s %s)", a.Action, a.Seq, ans.Status, ans.Code, ans.Err)
			}
		}
		rows := 0
		for _, row := range in.Obs.OperatorActions[a.BizID] {
			if row.Reason == a.Reason {
				rows++
				if row.Seq != a.Seq || row.Action != a.Action {
					wrongSeq.add(a.BizID, "%s of seq %d recorded as %s of seq %d", a.Action, a.Seq, row.Action, row.Seq)
				}
			}
		}
		want := 0
		if a.applied() {
			want = 1
		}
		// Answered only "operator_action_pending": one of the two sends
		// was in flight when the other was answered, and a client that
		// stops there cannot know whether it then applied; once is right,
		// twice is not.
		if rows != want && !(want == 0 && rows == 1 && a.pendingOnly()) {
			notOnce.add(a.BizID, "%s of seq %d sent twice: %d audit rows, want %d (answers %+v)", a.Action, a.Seq, rows, want, a.Answers)
		}
	}
	skipped := map[string]opAction{}
	for _, a := range ops {
		if a.Action == "skip" && a.applied() {
			skipped[a.RequestID] = a
		}
	}
	for req, a := range skipped {
		for _, rc := range in.Obs.Receipts {
			if rc.RequestID == req && rc.ReceivedAt.After(a.Answered) {
				skippedAgain.add(a.BizID, "skipped seq %d delivered at %s", a.Seq, rc.ReceivedAt.Format(time.StampMilli))
			}
		}
		for _, e := range in.Obs.Store[a.BizID].Events {
			if e.RequestID == req && e.Callback != "skipped" {
				skippedAgain.add(a.BizID, "skipped seq %d is %s in the store", a.Seq, e.Callback)
			}
		}
	}
	applied := 0
	for _, a := range ops {
		if a.applied() {
			applied++
		}
	}
	// Each of issue 8's fault classes must have happened in the run, or it
	// proved nothing about it.
	missed := violations{}
	happened := func(what string) bool {
		for _, e := range in.Faults {
			if e.What == what && e.Error == "" {
				return true
			}
		}
		return false
	}
	sch := in.Scheduled
	for _, c := range []struct {
		name      string
		scheduled bool
		ok        bool
	}{
		{"a store outage", sch.StoreOutage, happened(evStoreLocked)},
		{"a worker freeze past the heartbeat timeout", sch.Pause, happened(evPause) && happened(evResume)},
		{"an operator action while the faults ran", sch.Operator, applied > 0},
		{"a skip while the faults ran", sch.Operator, len(skipped) > 0},
		{"reports racing around run closes", sch.Races, len(in.Races) > 0},
		{"a run cancelled from Temporal", sch.StopRuns, happened(evCancelRun)},
		{"a run terminated from Temporal", sch.StopRuns, happened(evTerminateRun)},
		{"a run stopped with its callback at TOP", sch.StopRuns, happened(evStopAtTOP)},
	} {
		if c.scheduled && !c.ok {
			missed.add("schedule", "no %s", c.name)
		}
	}
	return []figure{
		invariant(groupRaces, "fault classes the run did not exercise", missed),
		info(groupRaces, "policies raced around run closes", int64(len(in.Races))),
		invariant(groupRaces, "race-phase sends without a usable answer", problems),
		invariant(groupRaces, "events accepted after the policy's accepted cancel", afterCancel),
		invariant(groupRaces, "seqs re-used for another event", reused),
		invariant(groupRaces, "deliveries of seq N after seq N+1 arrived", late),
		info(groupRaces, "operator actions during faults (each sent twice at once)", int64(len(ops))),
		info(groupRaces, "operator actions applied", int64(applied)),
		invariant(groupRaces, "operator actions answered for another seq", wrongSeq),
		invariant(groupRaces, "operator actions not applied exactly once", notOnce),
		invariant(groupRaces, "skipped callbacks delivered or parked again", skippedAgain),
	}
}

// operatorActionsOf reads the audit trail's operator actions of every
// policy chaos acted on.
func operatorActionsOf(ctx context.Context, st *store.Store, ops []opAction) (map[string][]store.OperatorAction, error) {
	out := map[string][]store.OperatorAction{}
	for _, a := range ops {
		if _, ok := out[a.BizID]; ok {
			continue
		}
		rows, err := st.OperatorActions(ctx, a.BizID)
		if err != nil {
			return nil, err
		}
		out[a.BizID] = rows
	}
	return out, nil
}

// raceReceiptsSettled reports the race policies whose accepted events have
// not all reached topsim yet.
func raceReceiptsSettled(races []*raceRun, receipts []devstack.Receipt) []string {
	got := map[string]bool{}
	for _, r := range receipts {
		got[r.RequestID] = true
	}
	var out []string
	for _, r := range races {
		for _, a := range r.Answers {
			if a.accepted() && !got[a.RequestID] {
				out = append(out, fmt.Sprintf("%s: seq %d not delivered", r.BizID, a.Seq))
			}
		}
	}
	return out
}
