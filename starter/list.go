package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/workflows"
)

const (
	defaultListLimit = 50
	// maxListPage bounds one visibility request, whatever --limit is.
	maxListPage = 100
)

func callbackStates() []workflows.CallbackState {
	return []workflows.CallbackState{
		workflows.CallbackIdle, workflows.CallbackPending, workflows.CallbackRetrying, workflows.CallbackParked,
	}
}

type listView struct {
	Policies []policyView `json:"policies"`
	// More says that more policies match than --limit allowed.
	More bool `json:"more"`
}

type policyView struct {
	BizID          string    `json:"biz_id"`
	State          string    `json:"state"`
	InsuranceType  string    `json:"insurance_type,omitempty"`
	CallbackState  string    `json:"callback_state,omitempty"`
	WorkflowStatus string    `json:"workflow_status"`
	StartTime      time.Time `json:"start_time,omitzero"`
}

func (v listView) write(w io.Writer) error {
	if len(v.Policies) == 0 {
		_, err := fmt.Fprintln(w, "no policies match")
		return err
	}
	t := newTable(w, "BIZ_ID", "STATE", "TYPE", "CALLBACK", "WORKFLOW", "STARTED")
	for _, p := range v.Policies {
		t.row(p.BizID, p.State, p.InsuranceType, p.CallbackState, p.WorkflowStatus, apiTime(p.StartTime))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if v.More {
		_, err := fmt.Fprintf(w, "(showing the first %d; more match, raise --limit)\n", len(v.Policies))
		return err
	}
	return nil
}

type listFlags struct {
	state         string
	callbackState string
	limit         int
	all           bool
}

func (f listFlags) filter() (policyclient.ListFilter, error) {
	var problems []string
	if f.state != "" {
		if _, err := fsm.ParseState(f.state); err != nil {
			problems = append(problems, "--state: "+err.Error())
		}
	}
	if f.callbackState != "" && !slices.Contains(callbackStates(), workflows.CallbackState(f.callbackState)) {
		names := make([]string, 0, len(callbackStates()))
		for _, s := range callbackStates() {
			names = append(names, string(s))
		}
		problems = append(problems, fmt.Sprintf("--callback-state: unknown callback state %q (want one of %s)",
			f.callbackState, strings.Join(names, ", ")))
	}
	if f.limit <= 0 {
		problems = append(problems, fmt.Sprintf("--limit: must be positive, got %d", f.limit))
	}
	if len(problems) > 0 {
		return policyclient.ListFilter{}, &usageError{Command: "starter list", Err: errors.New(strings.Join(problems, "; "))}
	}
	return policyclient.ListFilter{State: f.state, CallbackState: f.callbackState, IncludeClosed: f.all}, nil
}

func newListCmd(a *app) *cobra.Command {
	f := listFlags{limit: defaultListLimit}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List policies, each once: those with an open workflow, or with --all every recorded one",
		Long: "List policies, one row each. By default the policies whose workflow is open, from Temporal\n" +
			"visibility; with --all every policy the store has recorded, in biz_id order, those whose\n" +
			"workflow has closed too (WORKFLOW Closed, their view from the store).",
		Example: "  starter list --state insured\n" +
			"  starter list --all --state cancelled\n" +
			"  starter list --callback-state parked --limit 200",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			filter, err := f.filter()
			if err != nil {
				return err
			}
			ops, err := a.policies(cmd.Context())
			if err != nil {
				return err
			}
			v := listView{Policies: []policyView{}}
			for {
				filter.PageSize = min(f.limit-len(v.Policies), maxListPage)
				ctx, cancel := a.call(cmd.Context())
				page, err := ops.List(ctx, filter)
				cancel()
				if err != nil {
					return fmt.Errorf("list policies: %w", err)
				}
				for _, p := range page.Policies {
					if len(v.Policies) == f.limit {
						v.More = true
						break
					}
					v.Policies = append(v.Policies, policyView{
						BizID: p.BizID, State: p.State, InsuranceType: p.InsuranceType,
						CallbackState: p.CallbackState, WorkflowStatus: p.WorkflowStatus, StartTime: p.StartTime,
					})
				}
				if len(page.NextPageToken) == 0 {
					break
				}
				if len(v.Policies) == f.limit {
					// A token only says the server may have more; that is
					// the honest answer when we stop here.
					v.More = true
					break
				}
				filter.PageToken = page.NextPageToken
			}
			return a.emit(v, v.write)
		},
	}
	cmd.Flags().StringVar(&f.state, "state", "", "only policies in this state (new, pre_insured, underwritten, insured, cancelled)")
	cmd.Flags().StringVar(&f.callbackState, "callback-state", "", "only policies whose callback is idle, pending, retrying or parked")
	cmd.Flags().IntVar(&f.limit, "limit", defaultListLimit, "most policies to show")
	cmd.Flags().BoolVar(&f.all, "all", false, "also policies whose workflows have closed (from the store)")
	return cmd
}
