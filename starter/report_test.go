package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/policyclient"
)

const managerName = "王小丫"

func TestReportFlagsBuildTheResult(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want insurance.Result
	}{
		{
			name: "names and default time in GMT+8",
			args: []string{"--biz-id", "24010900100YSKSSG", "--stage", "pre_insure", "--status", "success", "--insurance-type", "home_property"},
			want: insurance.Result{
				BizID: "24010900100YSKSSG", Stage: insurance.StagePreInsure, Status: insurance.StatusSuccess,
				InsuranceType: insurance.TypeHomeProperty, TimeOfOccurrence: "2025-04-08 09:55:00",
			},
		},
		{
			name: "API numbers and every optional field",
			args: []string{
				"--biz-id", "B-2", "--stage", "1", "--status", "2", "--insurance-type", "2",
				"--time", "2025-04-08 10:00:01", "--policy-number", "12345678A", "--insurance-company", "1",
				"--document", "oss:aakkloi122", "--manager-name", managerName, "--request-id", "req-7",
			},
			want: insurance.Result{
				BizID: "B-2", Stage: insurance.StagePreInsure, Status: insurance.StatusFailure,
				InsuranceType: insurance.TypePerformanceBond, TimeOfOccurrence: "2025-04-08 10:00:01",
				PolicyNumber: "12345678A", InsuranceCompany: insurance.CompanyCPIC,
				InsuranceDocument: "oss:aakkloi122", BankAccountManagerName: managerName, RequestID: "req-7",
			},
		},
		{
			name: "company by name",
			args: []string{"--biz-id", "B-3", "--stage", "pre_insure", "--status", "failure", "--insurance-type", "performance_bond", "--insurance-company", "cpic"},
			want: insurance.Result{
				BizID: "B-3", Stage: insurance.StagePreInsure, Status: insurance.StatusFailure,
				InsuranceType: insurance.TypePerformanceBond, InsuranceCompany: insurance.CompanyCPIC,
				TimeOfOccurrence: "2025-04-08 09:55:00",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ops := newFakePolicies()
			res := runWith(t, ops, append([]string{"report"}, tt.args...)...)
			if res.code != exitOK {
				t.Fatalf("exit=%d, want 0; stderr=%s", res.code, res.stderr)
			}
			if len(ops.reports) != 1 {
				t.Fatalf("reports=%d, want 1", len(ops.reports))
			}
			if got := ops.reports[0]; got != tt.want {
				t.Fatalf("result=%+v,\nwant %+v", got, tt.want)
			}
			wantReq := tt.want.WithRequestID().RequestID
			wantLine := fmt.Sprintf("accepted  biz_id=%s seq=1 stage=pre_insure status=%s state=", tt.want.BizID, tt.want.Status)
			if !strings.HasPrefix(res.stdout, wantLine) || !strings.Contains(res.stdout, "request_id="+wantReq+"\n") {
				t.Fatalf("stdout=%q, want %q… request_id=%s", res.stdout, wantLine, wantReq)
			}
			if strings.Contains(res.stdout+res.stderr, managerName) {
				t.Fatalf("output shows the manager's name: %q %q", res.stdout, res.stderr)
			}
		})
	}
}

func TestReportAcceptedLineAndDuplicate(t *testing.T) {
	ops := newFakePolicies()
	b := &fakeBackends{ops: ops}
	c := cli{backends: b}
	for _, step := range []struct{ stage, time string }{
		{"pre_insure", "2025-04-08 09:50:00"},
		{"underwrite", "2025-04-08 09:51:00"},
	} {
		res := c.run(t, "report", "--biz-id", "B1", "--stage", step.stage, "--status", "success", "--insurance-type", "1", "--time", step.time)
		if res.code != exitOK {
			t.Fatalf("%s: exit=%d, stderr=%s", step.stage, res.code, res.stderr)
		}
	}
	again := c.run(t, "report", "--biz-id", "B1", "--stage", "underwrite", "--status", "success", "--insurance-type", "1", "--time", "2025-04-08 09:51:00")
	if again.code != exitOK {
		t.Fatalf("duplicate: exit=%d, stderr=%s", again.code, again.stderr)
	}
	reqID := insurance.DeriveRequestID("B1", insurance.StageUnderwrite, insurance.StatusSuccess, "2025-04-08 09:51:00")
	want := "duplicate biz_id=B1 seq=2 stage=underwrite status=success state=underwritten request_id=" + reqID + "\n"
	if again.stdout != want {
		t.Fatalf("stdout=%q, want %q", again.stdout, want)
	}
}

func TestReportJSON(t *testing.T) {
	ops := newFakePolicies()
	res := runWith(t, ops, "--json", "report", "--biz-id", "B1", "--stage", "pre_insure", "--status", "success", "--insurance-type", "1")
	if res.code != exitOK {
		t.Fatalf("exit=%d, stderr=%s", res.code, res.stderr)
	}
	var got acceptanceView
	decodeOne(t, res.stdout, &got)
	want := acceptanceView{
		Outcome: "accepted", BizID: "B1", Seq: 1, Stage: "pre_insure", Status: "success", State: "pre_insured",
		RequestID: insurance.DeriveRequestID("B1", insurance.StagePreInsure, insurance.StatusSuccess, "2025-04-08 09:55:00"),
	}
	if got != want {
		t.Fatalf("json=%+v, want %+v", got, want)
	}
}

func TestReportFromFile(t *testing.T) {
	body := `{"biz_id":"F1","stage":"2","status":1,"time_of_occurrence":"2025-04-08 09:55:00",` +
		`"insurance_type":1,"bank_account_manager_name":"` + managerName + `"}`
	want := insurance.Result{
		BizID: "F1", Stage: insurance.StageUnderwrite, Status: insurance.StatusSuccess,
		TimeOfOccurrence: "2025-04-08 09:55:00", InsuranceType: insurance.TypeHomeProperty, BankAccountManagerName: managerName,
	}
	path := filepath.Join(t.TempDir(), "event.json")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		stdin string
		args  []string
	}{
		{name: "file", args: []string{"report", "--file", path}},
		{name: "stdin", stdin: body, args: []string{"report", "--file", "-"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ops := newFakePolicies()
			res := cli{backends: &fakeBackends{ops: ops}, stdin: tt.stdin}.run(t, tt.args...)
			// A fresh policy cannot start at underwrite: the fake's real
			// lifecycle rules refuse it, which proves the event arrived.
			if res.code != exitRejected {
				t.Fatalf("exit=%d, want %d; stderr=%s", res.code, exitRejected, res.stderr)
			}
			if len(ops.reports) != 1 || ops.reports[0] != want {
				t.Fatalf("reports=%+v, want [%+v]", ops.reports, want)
			}
		})
	}
}

func TestReportBadInput(t *testing.T) {
	tests := []struct {
		name   string
		stdin  string
		args   []string
		fields []string // each must appear as "  <field>: " on stderr
		text   string   // and this must appear too
	}{
		{
			name:   "nothing given",
			args:   []string{"report"},
			fields: []string{"biz_id", "stage", "status", "insurance_type"},
			text:   "biz_id: is required",
		},
		{
			name:   "unparseable enums are reported once each",
			args:   []string{"report", "--biz-id", "B1", "--stage", "nine", "--status", "ok", "--insurance-type", "car", "--insurance-company", "7"},
			fields: []string{"stage", "status", "insurance_type", "insurance_company"},
			text:   `unknown stage "nine"`,
		},
		{
			name:   "bad time and biz_id",
			args:   []string{"report", "--biz-id", "B 1", "--stage", "1", "--status", "1", "--insurance-type", "1", "--time", "2025-04-08T09:55:00"},
			fields: []string{"biz_id", "time_of_occurrence"},
			text:   "must be yyyy-MM-dd HH:mm:ss",
		},
		{
			name:   "file that is not JSON",
			stdin:  "{not json",
			args:   []string{"report", "--file", "-"},
			fields: []string{"body"},
			text:   "is not valid JSON",
		},
		{
			name:   "file with a misspelt field",
			stdin:  `{"bizId":"B1","stage":1,"status":1,"time_of_occurrence":"2025-04-08 09:55:00","insurance_type":1}`,
			args:   []string{"report", "--file", "-"},
			fields: []string{"biz_id", "bizId"},
			text:   `did you mean "biz_id"?`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ops := newFakePolicies()
			b := &fakeBackends{ops: ops}
			res := cli{backends: b, stdin: tt.stdin}.run(t, tt.args...)
			if res.code != exitBadInput {
				t.Fatalf("exit=%d, want %d; stderr=%s", res.code, exitBadInput, res.stderr)
			}
			for _, f := range tt.fields {
				if !strings.Contains(res.stderr, "\n  "+f+": ") {
					t.Errorf("stderr lacks a line for field %s:\n%s", f, res.stderr)
				}
			}
			if strings.Count(res.stderr, "\n  stage: ") > 1 {
				t.Errorf("stage reported twice:\n%s", res.stderr)
			}
			if !strings.Contains(res.stderr, tt.text) {
				t.Errorf("stderr lacks %q:\n%s", tt.text, res.stderr)
			}
			if b.policiesCalls != 0 {
				t.Errorf("dialled Temporal %d times for an invalid event, want 0", b.policiesCalls)
			}
		})
	}
}

func TestReportBadInputJSON(t *testing.T) {
	res := runWith(t, newFakePolicies(), "--json", "report", "--biz-id", "B1", "--stage", "9", "--status", "1", "--time", "soon")
	if res.code != exitBadInput {
		t.Fatalf("exit=%d, want %d", res.code, exitBadInput)
	}
	var doc errorDoc
	decodeOne(t, res.stdout, &doc)
	if doc.Error.Kind != "bad_input" || doc.Error.ExitCode != 2 {
		t.Fatalf("error=%+v, want kind bad_input, exit_code 2", doc.Error)
	}
	var fields []string
	for _, p := range doc.Error.Problems {
		fields = append(fields, p.Field)
	}
	if got, want := strings.Join(fields, ","), "stage,time_of_occurrence,insurance_type"; got != want {
		t.Fatalf("problem fields=%s, want %s", got, want)
	}
}

func TestReportFileExcludesEventFlags(t *testing.T) {
	b := &fakeBackends{ops: newFakePolicies()}
	res := cli{backends: b}.run(t, "report", "--file", "-", "--biz-id", "B1", "--stage", "1")
	if res.code != exitBadInput {
		t.Fatalf("exit=%d, want %d", res.code, exitBadInput)
	}
	if !strings.Contains(res.stderr, "--file cannot be combined with --biz-id, --stage") {
		t.Fatalf("stderr=%q", res.stderr)
	}
	if !strings.Contains(res.stderr, "Run 'starter report --help' for usage.") {
		t.Fatalf("stderr lacks the help hint: %q", res.stderr)
	}
}

func TestReportRejected(t *testing.T) {
	ops := newFakePolicies()
	c := cli{backends: &fakeBackends{ops: ops}}
	if res := c.run(t, "report", "--biz-id", "B1", "--stage", "pre_insure", "--status", "success", "--insurance-type", "1", "--time", "2025-04-08 09:00:00"); res.code != exitOK {
		t.Fatalf("pre_insure: exit=%d, stderr=%s", res.code, res.stderr)
	}
	res := c.run(t, "report", "--biz-id", "B1", "--stage", "insure", "--status", "success", "--insurance-type", "1", "--time", "2025-04-08 09:01:00")
	if res.code != exitRejected {
		t.Fatalf("exit=%d, want %d; stderr=%s", res.code, exitRejected, res.stderr)
	}
	want := "rejected: illegal_transition: stage insure is not allowed in state pre_insured (allowed: underwrite)\n"
	if res.stderr != want {
		t.Fatalf("stderr=%q, want %q", res.stderr, want)
	}

	res = c.run(t, "--json", "report", "--biz-id", "B1", "--stage", "insure", "--status", "success", "--insurance-type", "1", "--time", "2025-04-08 09:01:00")
	var doc errorDoc
	decodeOne(t, res.stdout, &doc)
	if doc.Error.Kind != "rejected" || doc.Error.ExitCode != 3 || doc.Error.Reason != "illegal_transition" ||
		doc.Error.State != "pre_insured" || strings.Join(doc.Error.Allowed, ",") != "underwrite" {
		t.Fatalf("error=%+v", doc.Error)
	}
}

func TestFormatRejection(t *testing.T) {
	tests := []struct {
		name string
		rej  policyclient.Rejection
		want string
	}{
		{
			name: "mismatch",
			rej:  policyclient.Rejection{Reason: "policy_number_mismatch", Message: "policy number P2 differs from P1"},
			want: "rejected: policy_number_mismatch: policy number P2 differs from P1",
		},
		{
			name: "allowed stages added from details",
			rej: policyclient.Rejection{Reason: "illegal_transition", Message: "stage cancel not allowed",
				Details: detailsAllowing("insure", "cancel")},
			want: "rejected: illegal_transition: stage cancel not allowed (allowed: insure, cancel)",
		},
		{
			name: "terminal state allows nothing",
			rej:  policyclient.Rejection{Reason: "illegal_transition", Message: "policy is cancelled", Details: detailsAllowing()},
			want: "rejected: illegal_transition: policy is cancelled (allowed: none)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := formatRejection(&tt.rej); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReportUnavailable(t *testing.T) {
	t.Run("temporal down during the call", func(t *testing.T) {
		ops := newFakePolicies()
		ops.fail = func(insurance.Result) error {
			return fmt.Errorf("report event for policy B1: %w: %w", policyclient.ErrUnavailable, errors.New("connection refused"))
		}
		res := runWith(t, ops, "report", "--biz-id", "B1", "--stage", "1", "--status", "1", "--insurance-type", "1")
		if res.code != exitUnavailable {
			t.Fatalf("exit=%d, want %d; stderr=%s", res.code, exitUnavailable, res.stderr)
		}
		if !strings.Contains(res.stderr, "temporal unavailable") {
			t.Fatalf("stderr=%q", res.stderr)
		}
	})
	t.Run("dial fails", func(t *testing.T) {
		b := &fakeBackends{opsErr: &unavailableError{Backend: "temporal", Target: "127.0.0.1:1", Err: errors.New("connection refused")}}
		res := cli{backends: b}.run(t, "report", "--biz-id", "B1", "--stage", "1", "--status", "1", "--insurance-type", "1")
		if res.code != exitUnavailable {
			t.Fatalf("exit=%d, want %d; stderr=%s", res.code, exitUnavailable, res.stderr)
		}
		if want := "error: temporal at 127.0.0.1:1 is unreachable: connection refused\n"; res.stderr != want {
			t.Fatalf("stderr=%q, want %q", res.stderr, want)
		}
	})
}

// decodeOne decodes stdout as exactly one JSON document.
func decodeOne(t *testing.T, stdout string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %T from %q: %v", v, stdout, err)
	}
	if dec.More() {
		t.Fatalf("stdout holds more than one JSON document: %q", stdout)
	}
}
