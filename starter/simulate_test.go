package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/policyclient"
)

func TestPlanEvents(t *testing.T) {
	end := testNow
	stages := lifecycleStages()
	t.Run("full lifecycle", func(t *testing.T) {
		evs := planEvents("S1", insurance.TypeHomeProperty, stages, 0, end)
		var got []string
		for _, e := range evs {
			got = append(got, e.Stage.String()+"/"+e.Status.String()+"@"+e.TimeOfOccurrence+"#"+e.PolicyNumber)
		}
		want := []string{
			"pre_insure/success@2025-04-08 09:51:00#",
			"underwrite/success@2025-04-08 09:52:00#",
			"insure/success@2025-04-08 09:53:00#PN-S1",
			"endorse/success@2025-04-08 09:54:00#PN-S1",
			"cancel/success@2025-04-08 09:55:00#PN-S1",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		for _, e := range evs {
			if err := e.Validate(); err != nil {
				t.Fatalf("planned event is invalid: %v", err)
			}
		}
	})
	for _, failAt := range stages {
		t.Run("failure first at "+failAt.String(), func(t *testing.T) {
			evs := planEvents("S1", insurance.TypePerformanceBond, stages, failAt, end)
			if len(evs) != 6 {
				t.Fatalf("events=%d, want 6", len(evs))
			}
			i := slices.IndexFunc(evs, func(e insurance.Result) bool { return e.Status == insurance.StatusFailure })
			if i < 0 || evs[i].Stage != failAt || evs[i+1].Stage != failAt || evs[i+1].Status != insurance.StatusSuccess {
				t.Fatalf("failure at %d of %v, want %s failure then success", i, evs, failAt)
			}
			for j := 1; j < len(evs); j++ {
				if evs[j].TimeOfOccurrence <= evs[j-1].TimeOfOccurrence {
					t.Fatalf("time goes %s -> %s", evs[j-1].TimeOfOccurrence, evs[j].TimeOfOccurrence)
				}
			}
		})
	}
}

func TestFailingSpreadsExactlyK(t *testing.T) {
	for _, tt := range []struct {
		n, k int
		want []int
	}{
		{10, 3, []int{3, 6, 9}},
		{10, 0, nil},
		{4, 4, []int{0, 1, 2, 3}},
		{7, 2, []int{3, 6}},
		{1, 1, []int{0}},
	} {
		t.Run(fmt.Sprintf("%d of %d", tt.k, tt.n), func(t *testing.T) {
			var got []int
			for i := range tt.n {
				if failing(i, tt.n, tt.k) {
					got = append(got, i)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("failing lifecycles=%v, want %v", got, tt.want)
			}
		})
	}
}

func TestSimulateCounts(t *testing.T) {
	tests := []struct {
		name          string
		args          []string
		policies      int
		failures      int
		wantEvents    int
		wantFailStage []insurance.Stage // the failed stage of each policy in biz_id order, 0 for none
	}{
		{"no failures", []string{"-n", "4", "--failure-share", "0"}, 4, 0, 20, nil},
		{"30% failures", []string{"-n", "10", "-c", "3", "--failure-share", "0.3"}, 10, 3, 53,
			[]insurance.Stage{0, 0, 0, insurance.StageUnderwrite, 0, 0, insurance.StageInsure, 0, 0, insurance.StageEndorse}},
		{"all fail once", []string{"-n", "6", "-c", "6", "--failure-share", "1"}, 6, 6, 36, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ops := newFakePolicies()
			res := runWith(t, ops, append([]string{"--json", "simulate", "--prefix", "t-"}, tt.args...)...)
			if res.code != exitOK {
				t.Fatalf("exit=%d, stderr=%s", res.code, res.stderr)
			}
			var s simSummary
			decodeOne(t, res.stdout, &s)
			if s.Policies != tt.policies || s.FailureSteps != tt.failures || s.EventsPlanned != tt.wantEvents ||
				s.EventsSent != tt.wantEvents || s.Accepted != tt.wantEvents || s.Rejected != 0 || s.Errors != 0 ||
				s.Duplicates != 0 || s.Abandoned != 0 {
				t.Fatalf("summary=%+v, want %d policies, %d failure steps, %d events all accepted", s, tt.policies, tt.failures, tt.wantEvents)
			}
			if !strings.HasPrefix(s.BizIDPrefix, "t-20250408095500-") {
				t.Fatalf("biz_id prefix=%q, want t-<GMT+8 start time>-<random>-", s.BizIDPrefix)
			}
			if len(ops.reports) != tt.wantEvents || len(ops.status) != tt.policies {
				t.Fatalf("fake saw %d events for %d policies", len(ops.reports), len(ops.status))
			}
			var failStages []insurance.Stage // per policy in biz_id order; 0 for none
			failures := 0
			ids := make([]string, 0, len(ops.status))
			for id := range ops.status {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			for _, id := range ids {
				if !strings.HasPrefix(id, s.BizIDPrefix) {
					t.Fatalf("biz_id %q lacks prefix %q", id, s.BizIDPrefix)
				}
				if st := ops.status[id]; st.State != "cancelled" || st.Endorsements != 1 {
					t.Fatalf("%s ended %s with %d endorsements, want cancelled with 1", id, st.State, st.Endorsements)
				}
				var failed insurance.Stage
				for _, r := range ops.reportsFor(id) {
					if r.Status == insurance.StatusFailure {
						failed = r.Stage
						failures++
					}
				}
				failStages = append(failStages, failed)
			}
			if failures != tt.failures {
				t.Fatalf("failure events=%d, want %d", failures, tt.failures)
			}
			if tt.wantFailStage != nil && !slices.Equal(failStages, tt.wantFailStage) {
				t.Fatalf("failing stages=%v, want %v", failStages, tt.wantFailStage)
			}
		})
	}
}

func TestSimulateTextSummary(t *testing.T) {
	ops := newFakePolicies()
	calls := 0
	// Each reading of the clock is 250ms after the last, so elapsed is known.
	now := func() time.Time { calls++; return testNow.Add(time.Duration(calls) * 250 * time.Millisecond) }
	res := cli{backends: &fakeBackends{ops: ops}, now: now}.run(t, "simulate", "-n", "2", "--failure-share", "0.5")
	if res.code != exitOK {
		t.Fatalf("exit=%d, stderr=%s", res.code, res.stderr)
	}
	for _, want := range []string{
		"simulated 2 policies (1 with a failure-then-success step), biz_ids sim-20250408095500-",
		"-*\nevents      11 sent of 11\n",
		"events      11 sent of 11\n",
		"accepted    11\n",
		"duplicates  0\n",
		"rejected    0\n",
		"errors      0\n",
		"elapsed     250ms\n",
		"rate        44.0 events/s\n",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, res.stdout)
		}
	}
	if res.stderr != "" {
		t.Errorf("stderr=%q, want nothing when it is not a terminal", res.stderr)
	}
}

func TestSimulateProgressBar(t *testing.T) {
	t.Run("drawn on a terminal", func(t *testing.T) {
		res := cli{backends: &fakeBackends{ops: newFakePolicies()}, progress: true}.run(t, "simulate", "-n", "3")
		if res.code != exitOK {
			t.Fatalf("exit=%d, stderr=%s", res.code, res.stderr)
		}
		if !strings.Contains(res.stderr, "simulate") || !strings.Contains(res.stderr, "100%") || !strings.Contains(res.stderr, "(16/16") {
			t.Fatalf("stderr=%q, want a finished bar of 16 events", res.stderr)
		}
	})
	t.Run("off with --json", func(t *testing.T) {
		res := cli{backends: &fakeBackends{ops: newFakePolicies()}, progress: true}.run(t, "--json", "simulate", "-n", "3")
		if res.code != exitOK || res.stderr != "" {
			t.Fatalf("exit=%d stderr=%q, want 0 and nothing", res.code, res.stderr)
		}
	})
}

func TestSimulateErrorsAndRejections(t *testing.T) {
	t.Run("temporal down for one policy", func(t *testing.T) {
		ops := newFakePolicies()
		ops.fail = func(r insurance.Result) error {
			if strings.HasSuffix(r.BizID, "-0002") && r.Stage == insurance.StageInsure {
				return fmt.Errorf("report: %w", policyclient.ErrUnavailable)
			}
			return nil
		}
		res := runWith(t, ops, "--json", "simulate", "-n", "3", "--failure-share", "0")
		if res.code != exitUnavailable {
			t.Fatalf("exit=%d, want %d", res.code, exitUnavailable)
		}
		var s simSummary
		decodeOne(t, res.stdout, &s) // one document: the summary carries the problem
		if s.EventsPlanned != 15 || s.EventsSent != 13 || s.Accepted != 12 || s.Errors != 1 || s.Abandoned != 1 {
			t.Fatalf("summary=%+v", s)
		}
		if s.FirstProblem == nil || s.FirstProblem.Kind != "unavailable" || s.FirstProblem.ExitCode != 4 {
			t.Fatalf("first problem=%+v", s.FirstProblem)
		}
		if !strings.Contains(res.stderr, "error: simulate: 0 events rejected, 1 failed; first: report: temporal unavailable") {
			t.Fatalf("stderr=%q", res.stderr)
		}
	})
	t.Run("a rejection", func(t *testing.T) {
		ops := newFakePolicies()
		ops.fail = func(r insurance.Result) error {
			if r.Stage == insurance.StageEndorse {
				return &policyclient.Rejection{Reason: "policy_number_mismatch", Message: "policy number differs"}
			}
			return nil
		}
		res := runWith(t, ops, "simulate", "-n", "2", "--failure-share", "0")
		if res.code != exitRejected {
			t.Fatalf("exit=%d, want %d", res.code, exitRejected)
		}
		if !strings.Contains(res.stdout, "rejected    2\n") || !strings.Contains(res.stdout, "events      8 sent of 10\n") {
			t.Fatalf("stdout=%s", res.stdout)
		}
		if !strings.Contains(res.stderr, "error: simulate: 2 events rejected, 0 failed; first: rejected: policy_number_mismatch: policy number differs") {
			t.Fatalf("stderr=%q", res.stderr)
		}
	})
}

func TestSimulateRerunsDoNotCollide(t *testing.T) {
	ops := newFakePolicies()
	b := &fakeBackends{ops: ops}
	for i := range 2 {
		now := func() time.Time { return testNow.Add(time.Duration(i) * time.Second) }
		if res := (cli{backends: b, now: now}).run(t, "simulate", "-n", "2"); res.code != exitOK {
			t.Fatalf("run %d: exit=%d, stderr=%s", i, res.code, res.stderr)
		}
	}
	if len(ops.status) != 4 {
		t.Fatalf("policies=%d after two runs of 2, want 4 distinct", len(ops.status))
	}
}

func TestSimulateBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"share above one", []string{"--failure-share", "1.5"}, "--failure-share must be between 0 and 1, got 1.5"},
		{"no policies", []string{"-n", "0"}, "--count must be at least 1, got 0"},
		{"no concurrency", []string{"-c", "0"}, "--concurrency must be at least 1, got 0"},
		{"prefix with a space", []string{"--prefix", "my sim "}, `--prefix "my sim " makes unusable biz_ids: biz_id must contain only letters`},
		{"prefix too long", []string{"--prefix", strings.Repeat("p", 50)}, "biz_id must be at most 64 characters"},
		{"demo with count", []string{"--demo", "-n", "3"}, "--demo takes no --count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &fakeBackends{ops: newFakePolicies()}
			res := cli{backends: b}.run(t, append([]string{"simulate"}, tt.args...)...)
			if res.code != exitBadInput {
				t.Fatalf("exit=%d, want %d; stderr=%s", res.code, exitBadInput, res.stderr)
			}
			if !strings.Contains(res.stderr, tt.want) {
				t.Fatalf("stderr=%q, want it to contain %q", res.stderr, tt.want)
			}
			if b.policiesCalls != 0 {
				t.Fatalf("dialled Temporal despite bad flags")
			}
		})
	}
}

func TestDemo(t *testing.T) {
	ops := newFakePolicies()
	res := runWith(t, ops, "simulate", "--demo", "--prefix", "d-")
	if res.code != exitOK {
		t.Fatalf("exit=%d, stderr=%s", res.code, res.stderr)
	}
	wantStates := map[string]struct {
		state        string
		endorsements int
		events       int
	}{
		"preinsured":   {"pre_insured", 0, 1},
		"underwritten": {"underwritten", 0, 2},
		"insured":      {"insured", 0, 3},
		"endorsed":     {"insured", 1, 4},
		"cancelled":    {"cancelled", 0, 4},
		"PARK":         {"pre_insured", 0, 1},
	}
	if len(ops.status) != len(wantStates) {
		t.Fatalf("policies=%d, want %d", len(ops.status), len(wantStates))
	}
	for id, st := range ops.status {
		label := id[strings.LastIndex(id, "-")+1:]
		want, ok := wantStates[label]
		if !ok || !strings.HasPrefix(id, "d-20250408095500-") {
			t.Fatalf("unexpected policy %q", id)
		}
		if string(st.State) != want.state || st.Endorsements != want.endorsements || len(st.Events) != want.events {
			t.Errorf("%s: state=%s endorsements=%d events=%d, want %+v", label, st.State, st.Endorsements, len(st.Events), want)
		}
		row := fieldsOfRow(t, res.stdout, id)
		if row[1] != fmt.Sprint(want.events) || row[2] != want.state {
			t.Errorf("row %q, want %d events in %s", row, want.events, want.state)
		}
	}
	var parkID string
	for id := range ops.status {
		if strings.Contains(id, "PARK") {
			parkID = id
		}
	}
	if got := ops.status[parkID].CallbackState; got != "parked" {
		t.Errorf("PARK policy callback=%s, want parked", got)
	}
	if !strings.Contains(res.stdout, "illegal event: insure success on d-20250408095500-") ||
		!strings.Contains(res.stdout, "  rejected: illegal_transition: stage insure is not allowed in state pre_insured (allowed: underwrite)\n") {
		t.Fatalf("stdout lacks the rejection:\n%s", res.stdout)
	}
	if !strings.Contains(fieldsOfRowLine(t, res.stdout, parkID), "so its callback parks") {
		t.Errorf("PARK row lacks its note:\n%s", res.stdout)
	}
	if !strings.Contains(res.stdout, "`starter retry "+parkID+"` or `starter skip "+parkID+"`") {
		t.Errorf("stdout lacks the retry/skip hint for %s:\n%s", parkID, res.stdout)
	}
}

func TestDemoJSON(t *testing.T) {
	ops := newFakePolicies()
	res := runWith(t, ops, "--json", "simulate", "--demo")
	if res.code != exitOK {
		t.Fatalf("exit=%d, stderr=%s", res.code, res.stderr)
	}
	var v demoView
	decodeOne(t, res.stdout, &v)
	if len(v.Policies) != 6 {
		t.Fatalf("policies=%d, want 6", len(v.Policies))
	}
	var states []string
	parks := 0
	for _, p := range v.Policies {
		states = append(states, p.State)
		if p.CallbackPark {
			parks++
			if !strings.Contains(p.BizID, "PARK") {
				t.Errorf("parking policy %q has no PARK in its biz_id", p.BizID)
			}
		}
	}
	if got, want := strings.Join(states, ","), "pre_insured,underwritten,insured,insured,cancelled,pre_insured"; got != want {
		t.Fatalf("states=%s, want %s", got, want)
	}
	if parks != 1 {
		t.Fatalf("parking policies=%d, want 1", parks)
	}
	il := v.Illegal
	if il.Outcome != "rejected" || il.Reason != "illegal_transition" || il.Stage != "insure" ||
		strings.Join(il.Allowed, ",") != "underwrite" || il.BizID != v.Policies[0].BizID {
		t.Fatalf("illegal event=%+v", il)
	}
}

func TestDemoFailsWhenTheIllegalEventIsAccepted(t *testing.T) {
	ops := newFakePolicies()
	ops.permissive = true
	res := runWith(t, ops, "simulate", "--demo")
	if res.code != exitInternal {
		t.Fatalf("exit=%d, want %d", res.code, exitInternal)
	}
	if !strings.Contains(res.stderr, "was accepted, want an illegal_transition rejection") {
		t.Fatalf("stderr=%q", res.stderr)
	}
}

func fieldsOfRowLine(t *testing.T, out, first string) string {
	t.Helper()
	return strings.Join(fieldsOfRow(t, out, first), " ")
}
