package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/workflows"
)

func TestPlanIsDeterministic(t *testing.T) {
	cfg := planConfig{Policies: 30, Seed: 7, RunTag: "t", ParkEvery: 10}
	a, err := plan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := plan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if len(a[i].Steps) != len(b[i].Steps) {
			t.Fatalf("policy %d: %d steps, then %d", i, len(a[i].Steps), len(b[i].Steps))
		}
		for j := range a[i].Steps {
			if !bytes.Equal(a[i].Steps[j].Body, b[i].Steps[j].Body) {
				t.Fatalf("policy %d step %d differs between two plans with seed 7", i, j)
			}
		}
	}
	cfg.Seed = 8
	c, err := plan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	same := 0
	for i := range a {
		if len(a[i].Steps) == len(c[i].Steps) {
			same++
		}
	}
	if same == len(a) {
		t.Errorf("seeds 7 and 8 gave every policy the same number of steps; the seed does not shape the plan")
	}
}

// TestPlanCoversEveryKind checks the generated scripts against the rules
// independently of the model: what each kind of step must be answered.
func TestPlanCoversEveryKind(t *testing.T) {
	plans, err := plan(planConfig{Policies: 300, Seed: 1, RunTag: "t", ParkEvery: 10})
	if err != nil {
		t.Fatal(err)
	}
	reject := regexp.MustCompile(rejectPattern)
	kinds := map[stepKind]int{}
	parked := 0
	for _, p := range plans {
		if p.Park != reject.MatchString(p.BizID) {
			t.Errorf("%s: park=%v but the reject pattern match is %v", p.BizID, p.Park, !p.Park)
		}
		if p.Park {
			parked++
		}
		var seq int64
		for i, st := range p.Steps {
			kinds[st.Kind]++
			decoded, err := insurance.Decode(st.Body)
			switch {
			case st.Kind == kindInvalid:
				if err == nil || st.Want.HTTPStatus != 400 {
					t.Errorf("%s step %d: invalid event decoded (err %v) or predicted %d, want a decode error and 400", p.BizID, i, err, st.Want.HTTPStatus)
				}
				continue
			case err != nil && st.Kind == kindResend && p.Steps[st.ResendOf].Kind == kindInvalid && st.Want.HTTPStatus == 400:
				continue // an invalid event sent again is invalid again
			case err != nil:
				t.Fatalf("%s step %d: body does not decode: %v", p.BizID, i, err)
			}
			if decoded.BizID != p.BizID {
				t.Errorf("%s step %d: body biz_id %q", p.BizID, i, decoded.BizID)
			}
			switch st.Kind {
			case kindLegal:
				seq++
				if st.Want.HTTPStatus != 202 || st.Want.Seq != seq {
					t.Errorf("%s step %d: legal event predicted %+v, want 202 seq %d", p.BizID, i, st.Want, seq)
				}
				if st.Want.RequestID != decoded.WithRequestID().RequestID {
					t.Errorf("%s step %d: predicted request_id %s, the body's is %s", p.BizID, i, st.Want.RequestID, decoded.WithRequestID().RequestID)
				}
			case kindIllegal:
				if st.Want.Code != workflows.ReasonIllegalTransition {
					t.Errorf("%s step %d: illegal event predicted %+v", p.BizID, i, st.Want)
				}
			case kindBackwards:
				if st.Want.Code != workflows.ReasonTimeWentBackwards {
					t.Errorf("%s step %d: backwards event predicted %+v", p.BizID, i, st.Want)
				}
			case kindResend:
				orig := p.Steps[st.ResendOf]
				if !bytes.Equal(orig.Body, st.Body) {
					t.Errorf("%s step %d: re-send body differs from step %d's", p.BizID, i, st.ResendOf)
				}
				if orig.Want.HTTPStatus == 202 && (st.Want.HTTPStatus != 200 || st.Want.Seq != orig.Want.Seq) {
					t.Errorf("%s step %d: re-send of accepted step %d predicted %+v, want 200 seq %d", p.BizID, i, st.ResendOf, st.Want, orig.Want.Seq)
				}
			}
		}
		if seq == 0 {
			t.Errorf("%s: no legal event; every policy must have at least one accepted", p.BizID)
		}
	}
	for _, k := range []stepKind{kindLegal, kindIllegal, kindBackwards, kindInvalid, kindResend} {
		if kinds[k] == 0 {
			t.Errorf("300 policies have no %s step", k)
		}
	}
	if parked != 30 {
		t.Errorf("parked policies = %d, want 30 (every 10th of 300)", parked)
	}
}

func TestModelApply(t *testing.T) {
	ev := func(stage insurance.Stage, status insurance.Status, minute int) insurance.Result {
		return insurance.Result{BizID: "B1", Stage: stage, Status: status, TimeOfOccurrence: occurrenceTime(minute), InsuranceType: insurance.TypeHomeProperty}
	}
	pre := ev(insurance.StagePreInsure, insurance.StatusSuccess, 10)
	m := newModel()
	steps := []struct {
		name   string
		ev     insurance.Result
		minute int
		want   expectation
	}{
		{"underwrite on a new policy", ev(insurance.StageUnderwrite, insurance.StatusSuccess, 9), 9,
			expectation{HTTPStatus: 409, Code: workflows.ReasonIllegalTransition}},
		{"pre-insure", pre, 10,
			expectation{HTTPStatus: 202, Seq: 1, RequestID: pre.WithRequestID().RequestID, State: fsm.StatePreInsured}},
		{"the same again", pre, 10,
			expectation{HTTPStatus: 200, Seq: 1, RequestID: pre.WithRequestID().RequestID, State: fsm.StatePreInsured}},
		{"underwrite dated earlier", ev(insurance.StageUnderwrite, insurance.StatusSuccess, 8), 8,
			expectation{HTTPStatus: 409, Code: workflows.ReasonTimeWentBackwards}},
		{"an unknown stage", ev(invalidStage, insurance.StatusSuccess, 11), 11,
			expectation{HTTPStatus: 400, Code: workflows.ReasonInvalidRequest}},
		{"failed underwrite keeps the state", ev(insurance.StageUnderwrite, insurance.StatusFailure, 12), 12,
			expectation{HTTPStatus: 202, Seq: 2, State: fsm.StatePreInsured}},
		{"underwrite at the same minute", ev(insurance.StageUnderwrite, insurance.StatusSuccess, 12), 12,
			expectation{HTTPStatus: 202, Seq: 3, State: fsm.StateUnderwritten}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			got := m.apply(s.ev, s.minute)
			if s.want.RequestID == "" {
				got.RequestID = ""
			}
			if got != s.want {
				t.Fatalf("apply = %+v, want %+v", got, s.want)
			}
		})
	}
}

func TestBizIDsNameTheirRun(t *testing.T) {
	plans, err := plan(planConfig{Policies: 12, Seed: 1, RunTag: "abc", ParkEvery: 4})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range plans {
		if !strings.Contains(p.BizID, "-abc-") {
			t.Errorf("policy %d biz_id %q lacks the run tag", i, p.BizID)
		}
		if err := (insurance.Result{BizID: p.BizID, Stage: 1, Status: 1, TimeOfOccurrence: occurrenceTime(1), InsuranceType: 1}).Validate(); err != nil {
			t.Errorf("biz_id %q is not valid: %v", p.BizID, err)
		}
	}
	if !plans[2].Park || plans[0].Park || !plans[6].Park {
		t.Errorf("park flags = %v %v %v, want every 4th policy from index 2", plans[0].Park, plans[2].Park, plans[6].Park)
	}
}
