package main

import (
	"strings"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// reportAll sends events through the CLI, failing the test on any refusal.
func reportAll(t *testing.T, c cli, bizID string, steps ...[2]string) {
	t.Helper()
	for i, s := range steps {
		res := c.run(t, "report", "--biz-id", bizID, "--stage", s[0], "--status", s[1], "--insurance-type", "home_property",
			"--policy-number", "12345678A", "--manager-name", managerName,
			"--time", testNow.Add(time.Duration(i)*time.Minute).In(insurance.Location()).Format(insurance.TimeLayout))
		if res.code != exitOK {
			t.Fatalf("report %v: exit=%d, stderr=%s", s, res.code, res.stderr)
		}
	}
}

// fieldsOfRow returns the whitespace-separated cells of the table row whose
// first cell is first.
func fieldsOfRow(t *testing.T, out, first string) []string {
	t.Helper()
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == first {
			return f
		}
	}
	t.Fatalf("no row starting with %q in:\n%s", first, out)
	return nil
}

func TestStatusTable(t *testing.T) {
	ops := newFakePolicies()
	c := cli{backends: &fakeBackends{ops: ops}}
	reportAll(t, c, "B1", [2]string{"pre_insure", "success"}, [2]string{"underwrite", "failure"}, [2]string{"underwrite", "success"})
	// The workflow's callback progress, as it would report it.
	delivered := time.Date(2025, 4, 8, 2, 0, 0, 0, time.UTC)
	ev := ops.status["B1"].Events
	ev[0].Callback, ev[0].Attempts, ev[0].DeliveredAt = workflows.EventDelivered, 1, &delivered
	ev[1].Callback, ev[1].Attempts, ev[1].LastClass, ev[1].LastError = workflows.EventRetrying, 3, "transient", "HTTP 503"
	ops.status["B1"].CallbackState = workflows.CallbackRetrying

	res := c.run(t, "status", "B1")
	if res.code != exitOK {
		t.Fatalf("exit=%d, stderr=%s", res.code, res.stderr)
	}
	for _, want := range [][]string{
		{"state", "underwritten"},
		{"insurance_type", "home_property"},
		{"policy_number", "12345678A"},
		{"callback", "retrying"},
		{"last_seq", "3"},
		{"1", "pre_insure", "success", "2025-04-08", "09:55:00", "delivered", "1", "-", "2025-04-08", "10:00:00"},
		{"2", "underwrite", "failure", "2025-04-08", "09:56:00", "retrying", "3", "transient:", "HTTP", "503", "-"},
		{"3", "underwrite", "success", "2025-04-08", "09:57:00", "queued", "0", "-", "-"},
	} {
		if got := fieldsOfRow(t, res.stdout, want[0]); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("row %q=%q, want %q", want[0], got, want)
		}
	}
	if !strings.HasPrefix(res.stdout, "biz_id          B1\n") {
		t.Errorf("status starts %q, want the biz_id row first", res.stdout[:min(len(res.stdout), 30)])
	}
	if strings.Contains(res.stdout, managerName) {
		t.Fatalf("status shows the manager's name:\n%s", res.stdout)
	}
}

func TestStatusJSON(t *testing.T) {
	ops := newFakePolicies()
	c := cli{backends: &fakeBackends{ops: ops}}
	reportAll(t, c, "B1", [2]string{"pre_insure", "success"}, [2]string{"underwrite", "success"}, [2]string{"insure", "success"}, [2]string{"endorse", "success"})
	res := c.run(t, "--json", "status", "B1")
	if res.code != exitOK {
		t.Fatalf("exit=%d, stderr=%s", res.code, res.stderr)
	}
	var got statusView
	decodeOne(t, res.stdout, &got)
	if got.BizID != "B1" || got.State != "insured" || got.Endorsements != 1 || got.LastSeq != 4 ||
		got.InsuranceType != "home_property" || got.CallbackState != "idle" || len(got.Events) != 4 {
		t.Fatalf("status=%+v", got)
	}
	if e := got.Events[3]; e.Seq != 4 || e.Stage != "endorse" || e.Status != "success" || e.Callback != "queued" ||
		e.TimeOfOccurrence != "2025-04-08 09:58:00" {
		t.Fatalf("event 4=%+v", e)
	}
}

func TestStatusNotFound(t *testing.T) {
	res := runWith(t, newFakePolicies(), "status", "nope")
	if res.code != exitNotFound {
		t.Fatalf("exit=%d, want %d", res.code, exitNotFound)
	}
	if want := "error: status of nope: policy nope: policy not found\n"; res.stderr != want {
		t.Fatalf("stderr=%q, want %q", res.stderr, want)
	}
}

func TestListPagesUpToLimit(t *testing.T) {
	started := time.Date(2025, 4, 8, 1, 0, 0, 0, time.UTC)
	summary := func(id string) policyclient.PolicySummary {
		return policyclient.PolicySummary{BizID: id, State: "insured", InsuranceType: "home_property",
			CallbackState: "parked", WorkflowStatus: "Running", StartTime: started}
	}
	ops := newFakePolicies()
	ops.listPages = []policyclient.ListPage{
		{Policies: []policyclient.PolicySummary{summary("A"), summary("B")}, NextPageToken: []byte("t1")},
		{Policies: []policyclient.PolicySummary{summary("C")}, NextPageToken: []byte("t2")},
	}
	res := runWith(t, ops, "list", "--state", "insured", "--callback-state", "parked", "--limit", "3")
	if res.code != exitOK {
		t.Fatalf("exit=%d, stderr=%s", res.code, res.stderr)
	}
	if len(ops.listFilters) != 2 {
		t.Fatalf("List calls=%d, want 2", len(ops.listFilters))
	}
	first, second := ops.listFilters[0], ops.listFilters[1]
	if first.State != "insured" || first.CallbackState != "parked" || first.PageSize != 3 || first.PageToken != nil {
		t.Errorf("first filter=%+v", first)
	}
	if second.PageSize != 1 || string(second.PageToken) != "t1" {
		t.Errorf("second filter=%+v, want page size 1 and token t1", second)
	}
	for _, id := range []string{"A", "B", "C"} {
		want := []string{id, "insured", "home_property", "parked", "Running", "2025-04-08", "09:00:00"}
		if got := fieldsOfRow(t, res.stdout, id); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("row %s=%q, want %q", id, got, want)
		}
	}
	if !strings.Contains(res.stdout, "(showing the first 3; more match, raise --limit)") {
		t.Errorf("stdout lacks the more-match note:\n%s", res.stdout)
	}
}

func TestListAll(t *testing.T) {
	ops := newFakePolicies()
	ops.listPages = []policyclient.ListPage{{Policies: []policyclient.PolicySummary{
		{BizID: "A", State: "cancelled", InsuranceType: "home_property", CallbackState: "idle", WorkflowStatus: policyclient.WorkflowClosed},
	}}}
	res := runWith(t, ops, "list", "--all", "--state", "cancelled")
	if res.code != exitOK {
		t.Fatalf("exit=%d, stderr=%s", res.code, res.stderr)
	}
	if f := ops.listFilters[0]; !f.IncludeClosed || f.State != "cancelled" {
		t.Fatalf("filter=%+v, want IncludeClosed and state cancelled", f)
	}
	want := []string{"A", "cancelled", "home_property", "idle", "Closed", "-"}
	if got := fieldsOfRow(t, res.stdout, "A"); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("row=%q, want %q", got, want)
	}
}

func TestListJSON(t *testing.T) {
	ops := newFakePolicies()
	ops.listPages = []policyclient.ListPage{{Policies: []policyclient.PolicySummary{
		{BizID: "A", State: "new", WorkflowStatus: "Completed", StartTime: testNow},
	}}}
	res := runWith(t, ops, "--json", "list")
	if res.code != exitOK {
		t.Fatalf("exit=%d, stderr=%s", res.code, res.stderr)
	}
	var got listView
	decodeOne(t, res.stdout, &got)
	if got.More || len(got.Policies) != 1 || got.Policies[0].BizID != "A" || got.Policies[0].WorkflowStatus != "Completed" ||
		!got.Policies[0].StartTime.Equal(testNow) {
		t.Fatalf("list=%+v", got)
	}
	if ops.listFilters[0].PageSize != defaultListLimit {
		t.Fatalf("page size=%d, want %d", ops.listFilters[0].PageSize, defaultListLimit)
	}
}

func TestListBadFilters(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"state", []string{"--state", "issued"}, `--state: unknown state "issued"`},
		{"callback state", []string{"--callback-state", "stuck"}, `--callback-state: unknown callback state "stuck" (want one of idle, pending, retrying, parked)`},
		{"limit", []string{"--limit", "0"}, "--limit: must be positive, got 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &fakeBackends{ops: newFakePolicies()}
			res := cli{backends: b}.run(t, append([]string{"list"}, tt.args...)...)
			if res.code != exitBadInput {
				t.Fatalf("exit=%d, want %d", res.code, exitBadInput)
			}
			if !strings.Contains(res.stderr, tt.want) {
				t.Fatalf("stderr=%q, want it to contain %q", res.stderr, tt.want)
			}
			if b.policiesCalls != 0 {
				t.Fatalf("dialled Temporal for a bad filter")
			}
		})
	}
}

func TestRetryAndSkip(t *testing.T) {
	ops := newFakePolicies()
	c := cli{backends: &fakeBackends{ops: ops}}
	reportAll(t, c, "B-PARK", [2]string{"pre_insure", "success"})
	reportAll(t, c, "B-OK", [2]string{"pre_insure", "success"})

	res := c.run(t, "retry", "B-PARK", "--reason", "TOP fixed")
	if res.code != exitOK || res.stdout != "retry  biz_id=B-PARK seq=1 callback=retrying\n" {
		t.Fatalf("retry: exit=%d stdout=%q stderr=%q", res.code, res.stdout, res.stderr)
	}
	if got := ops.operator[0]; got != "retry B-PARK TOP fixed" {
		t.Fatalf("operator call=%q, want the reason passed on", got)
	}

	res = c.run(t, "skip", "B-OK")
	if res.code != exitRejected {
		t.Fatalf("skip: exit=%d, want %d", res.code, exitRejected)
	}
	if want := "rejected: no_parked_callback: policy B-OK has no parked callback\n"; res.stderr != want {
		t.Fatalf("stderr=%q, want %q", res.stderr, want)
	}

	ops.status["B-OK"].Events[0].Callback = workflows.EventParked
	res = c.run(t, "--json", "skip", "B-OK")
	var got operatorView
	decodeOne(t, res.stdout, &got)
	if want := (operatorView{Action: "skip", BizID: "B-OK", Seq: 1, Callback: "skipped"}); got != want {
		t.Fatalf("json=%+v, want %+v", got, want)
	}

	res = c.run(t, "retry", "ghost")
	if res.code != exitNotFound {
		t.Fatalf("retry of unknown policy: exit=%d, want %d", res.code, exitNotFound)
	}
}

func TestStatusViewOfNewPolicy(t *testing.T) {
	v := newStatusView(workflows.Status{BizID: "N", State: fsm.StateNew, CallbackState: workflows.CallbackIdle})
	var b strings.Builder
	if err := v.write(&b); err != nil {
		t.Fatal(err)
	}
	if got := fieldsOfRow(t, b.String(), "insurance_type"); strings.Join(got, " ") != "insurance_type -" {
		t.Fatalf("insurance_type row=%q, want a dash before any event sets it", got)
	}
	if !strings.Contains(b.String(), "\nno events\n") {
		t.Fatalf("output=%q", b.String())
	}
}
