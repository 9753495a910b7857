package importing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/workflows"
)

const ndjson = `{"biz_id":"A1","stage":1,"status":1,"time_of_occurrence":"2025-04-08 09:55:00","insurance_type":1,"already_reported":true}
{"biz_id":"A1","stage":2,"status":1,"time_of_occurrence":"2025-04-08 10:55:00","insurance_type":1,"already_reported":false}

{"biz_id":"B1","stage":9,"status":1,"time_of_occurrence":"2025-04-08 09:55:00","insurance_type":1,"already_reported":true}
{"biz_id":"B2","stage":1,"status":1,"time_of_occurrence":"2025-04-08 09:55:00","insurance_type":1}
{"biz_id":"B3","stage":1,"status":1,"time_of_occurrence":"2025-04-08 09:55:00","insurance_type":1,"already_reported":"yes"}
not json
{"biz_id":"A1","stage":3,"status":"1","time_of_occurrence":"2025-04-08 11:55:00","insurance_type":"1","already_reported":false,"request_id":"req-7"}
`

// problems renders a line's error as "field: message; …".
func problems(l Line) string {
	var v *insurance.ValidationError
	if !errors.As(l.Err, &v) {
		return fmt.Sprint(l.Err)
	}
	var out []string
	for _, p := range v.Problems {
		out = append(out, p.Field+": "+p.Message)
	}
	return strings.Join(out, "; ")
}

func TestReadNDJSONNamesEveryBadLine(t *testing.T) {
	lines, err := Read(strings.NewReader(ndjson), FormatNDJSON)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 7 {
		t.Fatalf("lines = %d, want 7 (the blank one skipped)", len(lines))
	}
	want := []struct {
		no       int
		problem  string // "" for a good line
		reported bool
	}{
		{1, "", true},
		{2, "", false},
		{4, "stage: 9 is not", false},
		{5, "already_reported: is required", false},
		{6, "already_reported: must be true or false", false},
		{7, "body: ", false},
		{8, "", false},
	}
	for i, w := range want {
		l := lines[i]
		if l.No != w.no {
			t.Errorf("line %d: No = %d, want %d", i, l.No, w.no)
		}
		switch {
		case w.problem == "" && l.Err != nil:
			t.Errorf("line %d: unexpected error %v", w.no, l.Err)
		case w.problem != "" && !strings.Contains(problems(l), w.problem):
			t.Errorf("line %d: problems %q, want %q", w.no, problems(l), w.problem)
		case w.problem == "" && l.AlreadyReported != w.reported:
			t.Errorf("line %d: already_reported = %v", w.no, l.AlreadyReported)
		}
	}
	if got := lines[0].Event.RequestID; got != insurance.DeriveRequestID("A1", insurance.StagePreInsure, insurance.StatusSuccess, "2025-04-08 09:55:00") {
		t.Errorf("derived request id = %q", got)
	}
	if got := lines[6].Event.RequestID; got != "req-7" {
		t.Errorf("given request id = %q, want req-7", got)
	}
}

func TestReadCSV(t *testing.T) {
	csv := "\ufeffbiz_id,stage,status,time_of_occurrence,insurance_type,already_reported,policy_number\n" +
		"A1,1,1,2025-04-08 09:55:00,1,true,\n" +
		"A1,2,1,2025-04-08 10:55:00,1,0,PN-1\n" +
		"A2,1,1,2025-04-08 10:55:00,1,maybe,\n" +
		"A3,1,1\n" +
		"A4,7,1,2025-04-08 10:55:00,1,false,\n"
	lines, err := Read(strings.NewReader(csv), FormatCSV)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range lines {
		got = append(got, fmt.Sprintf("%d %v %s", l.No, l.AlreadyReported, problems(l)))
	}
	want := []string{
		"2 true <nil>",
		"3 false <nil>",
		"4 false already_reported: must be true or false",
		"5 false body: has 3 cells, the header 7",
		"6 false stage: 7 is not a stage",
	}
	if len(got) != len(want) {
		t.Fatalf("lines = %q", got)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i][:min(len(want[i]), 40)]) {
			t.Errorf("line %d = %q, want %q", i, got[i], want[i])
		}
	}
	if lines[1].Event.PolicyNumber != "PN-1" || lines[1].Event.Stage != insurance.StageUnderwrite {
		t.Errorf("line 3 event = %+v", lines[1].Event)
	}
	if _, err := Read(strings.NewReader("stage,status\n1,1\n"), FormatCSV); err == nil || !strings.Contains(err.Error(), "no biz_id column") {
		t.Errorf("header without biz_id: err = %v", err)
	}
}

// fakePolicies judges imports with workflows.PlanImport against an
// in-memory snapshot per policy: the workflow's own rules, no server.
type fakePolicies struct {
	mu      sync.Mutex
	snaps   map[string]*workflows.Snapshot
	updates int
}

func (f *fakePolicies) Import(_ context.Context, bizID string, req workflows.ImportRequest) (workflows.ImportResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates++
	snap := f.snaps[bizID]
	plan, err := workflows.PlanImport(bizID, snap, req.Events)
	if err != nil {
		return workflows.ImportResult{}, err
	}
	if snap == nil {
		snap = &workflows.Snapshot{}
	}
	for _, o := range plan.Result.Outcomes {
		if o.Callback != "" {
			snap.Accepted = append(snap.Accepted, *o.Acceptance)
			snap.LastSeq = o.Acceptance.Seq
		}
	}
	snap.State, snap.Endorsements, snap.InsuranceType = plan.State, plan.Endorsements, plan.InsuranceType
	f.snaps[bizID] = snap
	return plan.Result, nil
}

func (f *fakePolicies) PolicySnapshot(_ context.Context, bizID string) (*workflows.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snaps[bizID], nil
}

func (f *fakePolicies) CheckClock(r insurance.Result) error {
	return r.CheckNotAhead(time.Date(2025, 5, 1, 0, 0, 0, 0, insurance.Location()), 10*time.Minute)
}

func TestRunReportsEveryLineAndIsIdempotent(t *testing.T) {
	file := ndjson + `{"biz_id":"A1","stage":1,"status":1,"time_of_occurrence":"2025-04-08 12:00:00","insurance_type":1,"already_reported":true}
{"biz_id":"C1","stage":1,"status":1,"time_of_occurrence":"2030-01-01 00:00:00","insurance_type":1,"already_reported":true}
`
	lines, err := Read(strings.NewReader(file), FormatNDJSON)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakePolicies{snaps: map[string]*workflows.Snapshot{}}
	run := func(dry bool) (Summary, []string) {
		var got []string
		sum, err := Run(context.Background(), f, lines, Options{DryRun: dry, Concurrency: 3, Report: func(r LineResult) {
			s := fmt.Sprintf("%d %s", r.Line, r.Outcome)
			if r.Error != nil {
				s += " " + r.Error.Code
			}
			got = append(got, s)
		}})
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(got, func(a, b string) int {
			var x, y int
			fmt.Sscan(a, &x)
			fmt.Sscan(b, &y)
			return x - y
		})
		return sum, got
	}

	dry, dryLines := run(true)
	if f.updates != 0 {
		t.Fatalf("a dry run sent %d updates", f.updates)
	}
	want := []string{"1 imported", "2 queued", "4 refused invalid_request", "5 refused invalid_request",
		"6 refused invalid_request", "7 refused invalid_request", "8 queued", "9 refused illegal_transition", "10 refused invalid_request"}
	if !slices.Equal(dryLines, want) {
		t.Fatalf("dry run lines = %q\nwant %q", dryLines, want)
	}
	if dry.Policies != 2 || dry.Imported != 1 || dry.Queued != 2 || dry.Refused != 6 || !dry.DryRun {
		t.Errorf("dry run summary = %+v", dry)
	}

	real, realLines := run(false)
	if !slices.Equal(realLines, want) {
		t.Fatalf("real run lines = %q\nwant the dry run's %q", realLines, want)
	}
	if real.Imported != 1 || real.Queued != 2 || real.Refused != 6 || f.updates != 1 {
		// C1's only line is refused before it reaches Temporal.
		t.Errorf("real run summary = %+v, updates = %d (want one, for A1)", real, f.updates)
	}

	again, againLines := run(false)
	want = []string{"1 duplicate", "2 duplicate", "4 refused invalid_request", "5 refused invalid_request",
		"6 refused invalid_request", "7 refused invalid_request", "8 duplicate", "9 refused illegal_transition", "10 refused invalid_request"}
	if !slices.Equal(againLines, want) {
		t.Fatalf("second run lines = %q\nwant %q", againLines, want)
	}
	if again.Imported != 0 || again.Queued != 0 || again.Duplicates != 3 {
		t.Errorf("second run summary = %+v", again)
	}
}
