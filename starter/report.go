package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// eventFlagNames are the report flags that build an event field by field;
// --file replaces all of them.
func eventFlagNames() []string {
	return []string{
		"biz-id", "stage", "status", "time", "insurance-type", "policy-number",
		"insurance-company", "document", "manager-name", "request-id",
	}
}

// reportFlags holds the report command's flag values as typed.
type reportFlags struct {
	file             string
	bizID            string
	stage            string
	status           string
	time             string
	insuranceType    string
	policyNumber     string
	insuranceCompany string
	document         string
	managerName      string
	requestID        string
}

func newReportCmd(a *app) *cobra.Command {
	var f reportFlags
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Report one insurance-result event to its policy workflow",
		Long: "Report one insurance-result event, starting the policy workflow if needed\n" +
			"(Update-with-Start), and print whether it was accepted, a duplicate, or rejected.\n\n" +
			"Build the event from flags, or read it with --file (a JSON object with the API's\n" +
			"field names; '-' reads standard input), checked by the same rules as the ingress.",
		Example: "  starter report --biz-id 24010900100YSKSSG --stage pre_insure --status success --insurance-type home_property\n" +
			"  starter report --biz-id 24010900100YSKSSG --stage 2 --status 1 --insurance-type 1 --time '2025-04-08 09:55:00'\n" +
			"  starter report --file event.json\n" +
			"  echo '{...}' | starter report --file -",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := a.reportEvent(cmd.Flags(), f)
			if err != nil {
				return err
			}
			ops, err := a.policies(cmd.Context())
			if err != nil {
				return err
			}
			ctx, cancel := a.call(cmd.Context())
			defer cancel()
			acc, err := ops.Report(ctx, r)
			if err != nil {
				return fmt.Errorf("report %s %s for %s: %w", r.Stage, r.Status, r.BizID, err)
			}
			view := newAcceptanceView(acc)
			return a.emit(view, func(w io.Writer) error {
				_, err := fmt.Fprintln(w, view.line())
				return err
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.file, "file", "f", "", "read the event from a JSON file ('-' for standard input) instead of flags")
	fl.StringVar(&f.bizID, "biz-id", "", "auction business number (required)")
	fl.StringVar(&f.stage, "stage", "", "pre_insure, underwrite, insure, cancel, endorse, or 1-5 (required)")
	fl.StringVar(&f.status, "status", "", "success, failure, 1 or 2 (required)")
	fl.StringVar(&f.time, "time", "", "time of occurrence, yyyy-MM-dd HH:mm:ss in GMT+8 (default now)")
	fl.StringVar(&f.insuranceType, "insurance-type", "", "home_property, performance_bond, 1 or 2 (required)")
	fl.StringVar(&f.policyNumber, "policy-number", "", "policy number")
	fl.StringVar(&f.insuranceCompany, "insurance-company", "", "cpic or 1")
	fl.StringVar(&f.document, "document", "", "insurance document reference, e.g. oss:aakkloi122")
	fl.StringVar(&f.managerName, "manager-name", "", "bank account manager's name (personal data: sent, never printed)")
	fl.StringVar(&f.requestID, "request-id", "", "request id (default derived from biz_id, stage, status and time)")
	return cmd
}

// reportEvent builds the event to report from --file or from the flags.
func (a *app) reportEvent(fs *pflag.FlagSet, f reportFlags) (insurance.Result, error) {
	if fs.Changed("file") {
		var mixed []string
		for _, name := range eventFlagNames() {
			if fs.Changed(name) {
				mixed = append(mixed, "--"+name)
			}
		}
		if len(mixed) > 0 {
			return insurance.Result{}, &usageError{
				Command: "starter report",
				Err:     fmt.Errorf("--file cannot be combined with %s: the file holds the whole event", strings.Join(mixed, ", ")),
			}
		}
		return a.readEventFile(f.file)
	}
	return f.result(a.now())
}

func (a *app) readEventFile(path string) (insurance.Result, error) {
	var (
		data []byte
		err  error
	)
	switch path {
	case "":
		return insurance.Result{}, &usageError{Command: "starter report", Err: errors.New("--file needs a path, or '-' for standard input")}
	case "-":
		// One byte past the limit lets Decode say the body is too big
		// instead of silently reading a truncated event.
		data, err = io.ReadAll(io.LimitReader(a.stdin, insurance.MaxBodyBytes+1))
	default:
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return insurance.Result{}, &usageError{Command: "starter report", Err: fmt.Errorf("read event: %w", err)}
	}
	return insurance.Decode(data)
}

// result builds the event from the flags. Every problem is collected, from
// parsing the enum flags and from Validate, into one
// *insurance.ValidationError, so one run shows everything to fix. now is the
// default time of occurrence.
func (f reportFlags) result(now time.Time) (insurance.Result, error) {
	r := insurance.Result{
		BizID:                  f.bizID,
		PolicyNumber:           f.policyNumber,
		TimeOfOccurrence:       f.time,
		BankAccountManagerName: f.managerName,
		InsuranceDocument:      f.document,
		RequestID:              f.requestID,
	}
	if r.TimeOfOccurrence == "" {
		r.TimeOfOccurrence = now.In(insurance.Location()).Format(insurance.TimeLayout)
	}
	var problems []insurance.FieldError
	// unparsed fields keep their zero value, for which Validate would add
	// a redundant "is required".
	var unparsed []string
	parse := func(field, value string, set func(string) error) {
		if value == "" {
			return
		}
		if err := set(value); err != nil {
			problems = append(problems, insurance.FieldError{Field: field, Message: err.Error()})
			unparsed = append(unparsed, field)
		}
	}
	parse("stage", f.stage, func(v string) (err error) { r.Stage, err = insurance.ParseStage(v); return err })
	parse("status", f.status, func(v string) (err error) { r.Status, err = insurance.ParseStatus(v); return err })
	parse("insurance_type", f.insuranceType, func(v string) (err error) { r.InsuranceType, err = insurance.ParseType(v); return err })
	parse("insurance_company", f.insuranceCompany, func(v string) (err error) { r.InsuranceCompany, err = insurance.ParseCompany(v); return err })

	var verr *insurance.ValidationError
	if err := r.Validate(); errors.As(err, &verr) {
		for _, p := range verr.Problems {
			if !slices.Contains(unparsed, p.Field) {
				problems = append(problems, p)
			}
		}
	} else if err != nil {
		return insurance.Result{}, fmt.Errorf("validate event: %w", err)
	}
	if len(problems) > 0 {
		return insurance.Result{}, &insurance.ValidationError{Problems: problems}
	}
	return r, nil
}

// acceptanceView is the report command's output, with stage and status
// by name rather than by API number.
type acceptanceView struct {
	Outcome   string `json:"outcome"` // "accepted" or "duplicate"
	BizID     string `json:"biz_id"`
	Seq       int64  `json:"seq"`
	Stage     string `json:"stage"`
	Status    string `json:"status"`
	State     string `json:"state"`
	RequestID string `json:"request_id"`
}

func newAcceptanceView(acc workflows.Acceptance) acceptanceView {
	outcome := "accepted"
	if acc.Duplicate {
		outcome = "duplicate"
	}
	return acceptanceView{
		Outcome:   outcome,
		BizID:     acc.BizID,
		Seq:       acc.Seq,
		Stage:     acc.Stage.String(),
		Status:    acc.Status.String(),
		State:     string(acc.State),
		RequestID: acc.RequestID,
	}
}

// line is the text output: "accepted  biz_id=… seq=3 stage=underwrite …".
func (v acceptanceView) line() string {
	return fmt.Sprintf("%-9s biz_id=%s seq=%d stage=%s status=%s state=%s request_id=%s",
		v.Outcome, v.BizID, v.Seq, v.Stage, v.Status, v.State, v.RequestID)
}
