package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// stepKind says why a planned event is sent.
type stepKind string

const (
	kindLegal     stepKind = "legal"     // the next event of the lifecycle
	kindIllegal   stepKind = "illegal"   // a stage the policy's state does not allow
	kindBackwards stepKind = "backwards" // a legal stage dated before the last accepted event
	kindInvalid   stepKind = "invalid"   // fails validation: an unknown stage
	kindResend    stepKind = "resend"    // an earlier step's exact body, sent again on purpose
)

// step is one event a business system sends, with the answer the lifecycle
// rules predict for it.
type step struct {
	Kind     stepKind
	Event    insurance.Result
	Minute   int // time_of_occurrence, in minutes (see occurrenceTime)
	ResendOf int // index of the re-sent step for kindResend, else -1
	Body     []byte
	Want     expectation
}

// expectation is the ingress answer the model predicts.
type expectation struct {
	HTTPStatus int       // 202 accepted, 200 duplicate, 400 or 409
	Code       string    // the error code of a 4xx
	Seq        int64     // 202 and 200: the (original) sequence number
	RequestID  string    // 202 and 200: the (original) request id
	State      fsm.State // 202 and 200: the state right after the (original) acceptance
}

func (e expectation) accepted() bool { return e.HTTPStatus == 202 || e.HTTPStatus == 200 }

// policyPlan is one policy's script.
type policyPlan struct {
	BizID string
	// Park marks a biz_id the reject pattern matches: topsim answers its
	// callbacks call_success=false until the pattern is removed.
	Park  bool
	Steps []step
}

// planConfig shapes the generated policies.
type planConfig struct {
	Policies  int
	Seed      uint64
	RunTag    string // makes this run's biz_ids unique
	ParkEvery int    // every ParkEvery-th policy parks; 0 = none
}

// parkPrefix starts the biz_id of every policy meant to park; rejectPattern
// is the topsim reject pattern that matches exactly those.
const (
	parkPrefix    = "CHP-"
	normalPrefix  = "CHN-"
	rejectPattern = "^" + parkPrefix
)

// invalidStage is not a stage, so an event carrying it fails validation.
const invalidStage insurance.Stage = 9

// plan builds every policy's script, deterministically from the seed.
func plan(cfg planConfig) ([]policyPlan, error) {
	plans := make([]policyPlan, 0, cfg.Policies)
	for i := range cfg.Policies {
		rng := rand.New(rand.NewPCG(cfg.Seed, uint64(i)))
		park := cfg.ParkEvery > 0 && i%cfg.ParkEvery == cfg.ParkEvery/2
		prefix := normalPrefix
		if park {
			prefix = parkPrefix
		}
		p, err := planPolicy(rng, fmt.Sprintf("%s%s-%04d", prefix, cfg.RunTag, i), park)
		if err != nil {
			return nil, err
		}
		plans = append(plans, p)
	}
	return plans, nil
}

// transition is a stage and status of the lifecycle path.
type transition struct {
	stage  insurance.Stage
	status insurance.Status
}

// lifecyclePath is the legal sequence one policy goes through: pre-insure,
// underwrite, insure, some endorsements, cancel; sometimes with a failure
// reported before a success, sometimes stopping early.
func lifecyclePath(rng *rand.Rand) []transition {
	ok, fail := insurance.StatusSuccess, insurance.StatusFailure
	var path []transition
	add := func(stage insurance.Stage, failureShare float64) {
		if rng.Float64() < failureShare {
			path = append(path, transition{stage, fail})
		}
		path = append(path, transition{stage, ok})
	}
	add(insurance.StagePreInsure, 0.05)
	add(insurance.StageUnderwrite, 0.25)
	add(insurance.StageInsure, 0.05)
	for range rng.IntN(3) {
		add(insurance.StageEndorse, 0.1)
	}
	add(insurance.StageCancel, 0.05)
	if rng.Float64() < 0.2 {
		// Stop early: the policy stays pre-insured, underwritten or insured.
		path = path[:1+rng.IntN(len(path)-1)]
	}
	return path
}

// planner builds one policy's steps and predicts each answer.
type planner struct {
	rng        *rand.Rand
	bizID      string
	insType    insurance.Type
	explicitID bool // the business system sends its own request ids
	minute     int
	events     int // events created, for explicit request ids
	m          *model
	steps      []step
}

func planPolicy(rng *rand.Rand, bizID string, park bool) (policyPlan, error) {
	pl := &planner{
		rng:        rng,
		bizID:      bizID,
		insType:    insurance.TypeHomeProperty,
		explicitID: rng.Float64() < 0.2,
		minute:     10,
		m:          newModel(),
	}
	if rng.IntN(2) == 1 {
		pl.insType = insurance.TypePerformanceBond
	}
	path := lifecyclePath(rng)
	for i, t := range path {
		// The odd event around each legal one, so that over a policy about
		// a third are illegal, a tenth dated backwards and a few invalid.
		if rng.Float64() < 0.35/float64(len(path)) {
			pl.illegal()
		}
		if i > 0 && rng.Float64() < 0.1/float64(len(path)) {
			pl.add(kindBackwards, t.stage, t.status, pl.m.lastMinute-1-rng.IntN(2))
		}
		if rng.Float64() < 0.05/float64(len(path)) {
			pl.add(kindInvalid, invalidStage, insurance.StatusSuccess, pl.nextMinute())
		}
		pl.add(kindLegal, t.stage, t.status, pl.nextMinute())
		switch r := rng.Float64(); {
		case r < 0.06:
			pl.resend(len(pl.steps) - 1) // at once, as a nervous client would
		case r < 0.12:
			pl.resend(rng.IntN(len(pl.steps)))
		}
	}
	if rng.Float64() < 0.2 {
		pl.illegal() // e.g. an endorsement after the cancel
	}
	if rng.Float64() < 0.2 {
		pl.resend(rng.IntN(len(pl.steps)))
	}
	for i := range pl.steps {
		body, err := json.Marshal(pl.steps[i].Event)
		if err != nil {
			return policyPlan{}, fmt.Errorf("encode event %d of %s: %w", i, bizID, err)
		}
		pl.steps[i].Body = body
	}
	return policyPlan{BizID: bizID, Park: park, Steps: pl.steps}, nil
}

func (pl *planner) nextMinute() int {
	pl.minute += 1 + pl.rng.IntN(3)
	return pl.minute
}

// illegal adds an event whose stage the current state does not allow.
func (pl *planner) illegal() {
	allowed := pl.m.allowed()
	var candidates []insurance.Stage
	for _, s := range insurance.Stages() {
		if !slices.Contains(allowed, s) {
			candidates = append(candidates, s)
		}
	}
	status := insurance.StatusSuccess
	if pl.rng.Float64() < 0.2 {
		status = insurance.StatusFailure
	}
	pl.add(kindIllegal, candidates[pl.rng.IntN(len(candidates))], status, pl.nextMinute())
}

func (pl *planner) add(kind stepKind, stage insurance.Stage, status insurance.Status, minute int) {
	pl.events++
	ev := insurance.Result{
		BizID:                  pl.bizID,
		PolicyNumber:           "P-" + pl.bizID,
		InsuranceCompany:       insurance.CompanyCPIC,
		Stage:                  stage,
		Status:                 status,
		TimeOfOccurrence:       occurrenceTime(minute),
		BankAccountManagerName: "王小丫",
		InsuranceType:          pl.insType,
	}
	if pl.explicitID {
		ev.RequestID = fmt.Sprintf("x-%s-%d", pl.bizID, pl.events)
	}
	pl.push(step{Kind: kind, Event: ev, Minute: minute, ResendOf: -1})
}

func (pl *planner) resend(i int) {
	orig := pl.steps[i]
	pl.push(step{Kind: kindResend, Event: orig.Event, Minute: orig.Minute, ResendOf: i})
}

func (pl *planner) push(s step) {
	s.Want = pl.m.apply(s.Event, s.Minute)
	pl.steps = append(pl.steps, s)
}

// occurrenceTime dates an event minute minutes after a fixed base, so that
// each policy's events are strictly later than the one before and a plan
// does not depend on when it runs.
func occurrenceTime(minute int) string {
	base := time.Date(2025, 4, 8, 9, 0, 0, 0, time.UTC)
	return base.Add(time.Duration(minute) * time.Minute).Format("2006-01-02 15:04:05")
}

// model is what the lifecycle rules say about one policy, checked in the
// workflow validator's order: validation, duplicate, transition, time.
type model struct {
	state        fsm.State
	endorsements int
	lastMinute   int // of the last accepted event; -1 before the first
	seq          int64
	accepted     map[string]expectation // by request id: the original acceptance
}

func newModel() *model {
	return &model{state: fsm.StateNew, lastMinute: -1, accepted: map[string]expectation{}}
}

func (m *model) allowed() []insurance.Stage {
	l, err := fsm.Restore(m.state, m.endorsements)
	if err != nil {
		return nil
	}
	return l.Allowed()
}

// apply predicts the answer to ev (dated minute) and, if it is accepted,
// moves the model.
func (m *model) apply(ev insurance.Result, minute int) expectation {
	if ev.Validate() != nil {
		return expectation{HTTPStatus: 400, Code: workflows.ReasonInvalidRequest}
	}
	ev = ev.WithRequestID()
	if orig, ok := m.accepted[ev.RequestID]; ok {
		orig.HTTPStatus = 200
		return orig
	}
	next, endorsements, err := fsm.Next(m.state, m.endorsements, ev.Stage, ev.Status)
	if err != nil {
		return expectation{HTTPStatus: 409, Code: workflows.ReasonIllegalTransition}
	}
	if minute < m.lastMinute {
		return expectation{HTTPStatus: 409, Code: workflows.ReasonTimeWentBackwards}
	}
	m.seq++
	m.state, m.endorsements, m.lastMinute = next, endorsements, minute
	want := expectation{HTTPStatus: 202, Seq: m.seq, RequestID: ev.RequestID, State: next}
	m.accepted[ev.RequestID] = want
	return want
}
