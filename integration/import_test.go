package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"

	"github.com/insuranceflow/insuranceflow/actions"
	"github.com/insuranceflow/insuranceflow/importing"
	"github.com/insuranceflow/insuranceflow/reconcile"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// importLine is one NDJSON import line: an ingress body plus already_reported.
func importLine(t *testing.T, body map[string]any, reported any) string {
	t.Helper()
	line := map[string]any{}
	for k, v := range body {
		line[k] = v
	}
	if reported != nil {
		line["already_reported"] = reported
	}
	b, err := json.Marshal(line)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type importOutput struct {
	Summary importing.Summary      `json:"summary"`
	Lines   []importing.LineResult `json:"lines"`
}

// starterImport runs `starter --json import` and returns its document and exit code.
func starterImport(t *testing.T, args ...string) (importOutput, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := env.Starter(ctx, append([]string{"--json", "import"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("starter import: %v", err)
	}
	var doc importOutput
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("starter import %v: exit %d, output %s, stderr %s: %v", args, code, out, stderr.String(), err)
	}
	return doc, code
}

// historyCount counts the actions of a policy's open run so far.
func historyCount(ctx context.Context, t *testing.T, bizID string) actions.Count {
	t.Helper()
	var events []*historypb.HistoryEvent
	it := env.Temporal.GetWorkflowHistory(ctx, workflows.WorkflowID(bizID), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", bizID, err)
		}
		events = append(events, e)
	}
	return actions.Of(events)
}

// TestImportMidLifecycle is issue 12's acceptance: a file of policies in
// flight imports with no TOP call for already-reported events and one for
// each event still to report; a live cancel for an imported policy is
// then accepted with the next seq and delivered; the same file imported
// again changes nothing; a dry run names every bad line and writes
// nothing; the imported events are in the store with who imported them.
func TestImportMidLifecycle(t *testing.T) {
	ctx := context.Background()
	insured, halfway, fresh, illegal := newBizID("IM"), newBizID("IH"), newBizID("IF"), newBizID("IX")
	lines := []string{
		importLine(t, event(insured, 1, 1, 0), true),  // 1
		importLine(t, event(insured, 2, 1, 1), true),  // 2
		importLine(t, event(halfway, 1, 1, 0), true),  // 3
		importLine(t, event(insured, 3, 1, 2), true),  // 4
		importLine(t, event(halfway, 2, 1, 1), true),  // 5
		importLine(t, event(halfway, 3, 1, 2), false), // 6: to report
		importLine(t, event(fresh, 1, 1, 0), true),    // 7
		importLine(t, event(illegal, 2, 1, 0), true),  // 8: underwrite in state new
		importLine(t, event(fresh, 9, 1, 1), true),    // 9: no such stage
		importLine(t, event(fresh, 2, 1, 1), nil),     // 10: already_reported missing
		`{"biz_id":`, // 11: not JSON
	}
	file := filepath.Join(t.TempDir(), "inflight.ndjson")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantBad := map[int]string{8: "illegal_transition", 9: "invalid_request", 10: "invalid_request", 11: "invalid_request"}
	checkBad := func(what string, doc importOutput) {
		t.Helper()
		got := map[int]string{}
		for _, l := range doc.Lines {
			got[l.Line] = l.Error.Code
		}
		if fmt.Sprint(got) != fmt.Sprint(wantBad) {
			t.Fatalf("%s: bad lines = %v, want %v", what, got, wantBad)
		}
	}

	dry, code := starterImport(t, "--file", file, "--dry-run")
	if code != 3 {
		t.Fatalf("dry run exit = %d, want 3 (lines refused)", code)
	}
	checkBad("dry run", dry)
	if s := dry.Summary; !s.DryRun || s.Policies != 4 || s.Imported != 6 || s.Queued != 1 || s.Refused != 4 {
		t.Fatalf("dry run summary = %+v", s)
	}
	if code := call(t, http.MethodGet, "/v1/policies/"+insured, nil, nil); code != http.StatusNotFound {
		t.Fatalf("after a dry run GET %s = %d, want 404: nothing written", insured, code)
	}

	doc, code := starterImport(t, "--file", file, "--qps", "50")
	if code != 3 {
		t.Fatalf("import exit = %d, want 3", code)
	}
	checkBad("import", doc)
	if s := doc.Summary; s.DryRun || s.Policies != 4 || s.Imported != 6 || s.Queued != 1 || s.Refused != 4 || s.Duplicates != 0 {
		t.Fatalf("import summary = %+v", s)
	}

	// Only the event still to report reaches TOP.
	got := waitReceipts(t, halfway, 1, 30*time.Second)
	if got[0].StageName != "insure" {
		t.Fatalf("halfway's callback = %+v, want its insure", got[0])
	}
	st := status(t, insured)
	if st.State != "insured" || len(st.Events) != 3 {
		t.Fatalf("imported policy = %+v, want insured with 3 events", st)
	}
	for _, e := range st.Events {
		if e.Callback != string(workflows.EventImported) || e.Attempts != 0 {
			t.Errorf("event %d callback = %s attempts %d, want imported, never attempted", e.Seq, e.Callback, e.Attempts)
		}
	}
	var full struct {
		OperatorActions []struct {
			Seq    int64  `json:"seq"`
			Action string `json:"action"`
			By     string `json:"by"`
		} `json:"operator_actions"`
	}
	call(t, http.MethodGet, "/v1/policies/"+insured, nil, &full)
	if len(full.OperatorActions) != 3 || full.OperatorActions[0].Action != "import" || full.OperatorActions[0].By == "" {
		t.Fatalf("audit trail = %+v, want 3 import rows naming who imported", full.OperatorActions)
	}

	// What an imported policy cost: its start, the import Update, the one
	// store write and the run's idle timer; a policy of any length the same.
	imported := historyCount(ctx, t, fresh)
	t.Logf("actions of a policy imported in one event: %+v (total %d)", imported, imported.Total())
	if imported.Starts != 1 || imported.Updates != 1 || imported.LocalActivities != 1 || imported.Activities != 0 || imported.Upserts != 0 {
		t.Errorf("imported policy actions = %+v, want 1 start, 1 update, 1 local activity, no activity, no upsert", imported)
	}
	insuredActions := historyCount(ctx, t, insured)
	if insuredActions != imported {
		t.Errorf("3 imported events cost %+v, 1 cost %+v: want the same", insuredActions, imported)
	}

	// Its events all reported already, the imported policy has nothing to
	// do: its run completes at once (no idle timer), the store holds it.
	eventually(t, 15*time.Second, insured+"'s import run completed", func() (bool, string) {
		d, err := env.Temporal.DescribeWorkflowExecution(context.Background(), workflows.WorkflowID(insured), "")
		if err != nil {
			return false, err.Error()
		}
		s := d.GetWorkflowExecutionInfo().GetStatus()
		return s == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, s.String()
	})
	recordHistoryOf(t, "import-closes", insured)

	// A live cancel for an imported policy: the next seq, delivered (a
	// new run, loading the policy from the store).
	mustAccept(t, event(insured, 4, 1, 3), 4, "cancelled")
	got = waitReceipts(t, insured, 1, 30*time.Second)
	if len(got) != 1 || got[0].StageName != "cancel" {
		t.Fatalf("insured's callbacks = %+v, want only the live cancel", got)
	}

	// The same file again changes nothing.
	again, code := starterImport(t, "--file", file)
	if code != 3 {
		t.Fatalf("second import exit = %d, want 3 (the same bad lines)", code)
	}
	checkBad("second import", again)
	if s := again.Summary; s.Imported != 0 || s.Queued != 0 || s.Duplicates != 7 {
		t.Fatalf("second import summary = %+v, want 7 duplicates and nothing new", s)
	}
	time.Sleep(time.Second)
	if n := len(receipts(t, halfway)); n != 1 {
		t.Fatalf("halfway has %d callbacks after the second import, want 1", n)
	}
	if st := status(t, insured); st.State != "cancelled" || len(st.Events) != 4 {
		t.Fatalf("insured after the second import = %+v", st)
	}
	recordHistoryOf(t, "import-closed-then-cancel", insured)

	// Reconcile the business system's own list with the store: the list
	// as it should be agrees; one with a planted difference (halfway's
	// insure left out, an underwrite for fresh that never came) does not.
	entry := func(body map[string]any) string {
		return fmt.Sprintf(`{"biz_id":%q,"stage":%d,"status":%d,"time_of_occurrence":%q}`,
			body["biz_id"], body["stage"], body["status"], body["time_of_occurrence"])
	}
	good := []string{
		entry(event(insured, 1, 1, 0)), entry(event(insured, 2, 1, 1)), entry(event(insured, 3, 1, 2)), entry(event(insured, 4, 1, 3)),
		entry(event(halfway, 1, 1, 0)), entry(event(halfway, 2, 1, 1)), entry(event(halfway, 3, 1, 2)),
		entry(event(fresh, 1, 1, 0)),
	}
	planted := append(append([]string{}, good[:6]...), good[7], entry(event(fresh, 2, 1, 5)))
	rep, code := starterReconcile(t, good)
	if code != 0 || rep.Matched != 8 || rep.MissingInStore != 0 || rep.MissingInList != 0 {
		t.Fatalf("reconcile of the right list: exit %d, %+v", code, rep)
	}
	rep, code = starterReconcile(t, planted)
	if code != 7 || rep.MissingInStore != 1 || rep.MissingInList != 1 || len(rep.Policies) != 2 {
		t.Fatalf("reconcile of the planted list: exit %d, %+v", code, rep)
	}
	for _, p := range rep.Policies {
		switch p.BizID {
		case halfway:
			if len(p.MissingInList) != 1 || p.MissingInList[0].Stage != "insure" || p.MissingInList[0].Seq != 3 {
				t.Errorf("halfway's difference = %+v, want its insure (#3) only in insuranceflow", p)
			}
		case fresh:
			if len(p.MissingInStore) != 1 || p.MissingInStore[0].Stage != "underwrite" || p.MissingInStore[0].Line != 8 {
				t.Errorf("fresh's difference = %+v, want line 8's underwrite only in the list", p)
			}
		default:
			t.Errorf("unexpected difference %+v", p)
		}
	}
}

// starterReconcile runs `starter --json reconcile --only-listed` on a list.
func starterReconcile(t *testing.T, list []string) (reconcile.Report, int) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "list.ndjson")
	if err := os.WriteFile(file, []byte(strings.Join(list, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := env.Starter(ctx, "--json", "reconcile", "--only-listed", "--file", file).Output()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("starter reconcile: %v", err)
	}
	var rep reconcile.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("starter reconcile: exit %d, output %s: %v", code, out, err)
	}
	return rep, code
}

// postImport sends an NDJSON body to POST /v1/imports as caller token and
// returns the status and the answer's lines.
func postImport(t *testing.T, token, query, body string, invalid bool) (int, []json.RawMessage) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, env.IngressURL+"/v1/imports"+query, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/x-ndjson")
	if invalid {
		req = deliberatelyInvalid(req)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("POST /v1/imports: %v", err)
	}
	defer resp.Body.Close()
	var lines []json.RawMessage
	dec := json.NewDecoder(resp.Body)
	for dec.More() {
		var l json.RawMessage
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("answer line %d: %v", len(lines)+1, err)
		}
		lines = append(lines, l)
	}
	return resp.StatusCode, lines
}

// TestImportOverHTTP: POST /v1/imports for the operate scope streams one
// answer line per event line and a summary; the caller's name is who
// imported; a reporter may not import; a dry run writes nothing.
func TestImportOverHTTP(t *testing.T) {
	bizID := newBizID("IW")
	body := importLine(t, event(bizID, 1, 1, 0), true) + "\n" +
		importLine(t, event(bizID, 2, 1, 1), true) + "\n" +
		importLine(t, event(bizID, 4, 1, 2), false) + "\n" // cancel from underwritten: refused

	if code, _ := postImport(t, reporterToken, "", body, false); code != http.StatusForbidden {
		t.Fatalf("a reporter's import: %d, want 403", code)
	}
	code, lines := postImport(t, operatorToken, "?dry_run=true", body, false)
	if code != http.StatusOK || len(lines) != 4 {
		t.Fatalf("dry run: %d, %d lines", code, len(lines))
	}
	if c := call(t, http.MethodGet, "/v1/policies/"+bizID, nil, nil); c != http.StatusNotFound {
		t.Fatalf("after a dry run GET = %d, want 404", c)
	}

	code, lines = postImport(t, operatorToken, "", body, false)
	if code != http.StatusOK || len(lines) != 4 {
		t.Fatalf("import: %d, %d lines", code, len(lines))
	}
	outcomes := map[int]string{}
	for _, raw := range lines[:3] {
		var l importing.LineResult
		if err := json.Unmarshal(raw, &l); err != nil {
			t.Fatal(err)
		}
		outcomes[l.Line] = string(l.Outcome)
		if l.Error != nil {
			outcomes[l.Line] += " " + l.Error.Code
		}
	}
	if fmt.Sprint(outcomes) != "map[1:imported 2:imported 3:refused illegal_transition]" {
		t.Fatalf("outcomes = %v", outcomes)
	}
	var sum struct {
		Summary importing.Summary `json:"summary"`
	}
	if err := json.Unmarshal(lines[3], &sum); err != nil || sum.Summary.Imported != 2 || sum.Summary.Refused != 1 {
		t.Fatalf("summary line %s: %v", lines[3], err)
	}
	var full struct {
		OperatorActions []struct {
			Action string `json:"action"`
			By     string `json:"by"`
		} `json:"operator_actions"`
	}
	call(t, http.MethodGet, "/v1/policies/"+bizID, nil, &full)
	if len(full.OperatorActions) != 2 || full.OperatorActions[0].By != operatorName {
		t.Fatalf("audit trail = %+v, want 2 imports by %s", full.OperatorActions, operatorName)
	}
	if n := len(receipts(t, bizID)); n != 0 {
		t.Fatalf("%d callbacks at topsim, want none", n)
	}

	// A line that is not JSON is refused in its own answer line.
	code, lines = postImport(t, operatorToken, "", body+"{oops\n", true)
	if code != http.StatusOK || len(lines) != 5 || !strings.Contains(string(lines[0]), `"line":4`) {
		t.Fatalf("body with a broken line: %d, lines %s", code, lines)
	}
}
