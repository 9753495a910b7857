package workflows

import (
	"fmt"
	"strings"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// syncSearchAttributes upserts the search attributes whose values differ from
// what the workflow holds, and nothing when none do. The main loop calls it
// only at a few points (a delivery completed, retrying or parking began or
// ended, about to block, about to complete), never when a first attempt
// starts, so a normal lifecycle costs an upsert per PolicyState change.
//
// Before the first event is accepted there is nothing to show: the starter
// set the values for the event being accepted, and the handler that accepts
// it may run after the main loop first gets here.
func (p *policy) syncSearchAttributes(ctx workflow.Context) {
	if p.lastSeq == 0 {
		return
	}
	var updates []temporal.SearchAttributeUpdate
	for _, v := range searchAttributeValues(p.bizID, p.lifecycle.State(), p.insuranceType, p.callbackState()) {
		name := v.key.GetName()
		if current, ok := p.searchAttrs[name]; ok && current == v.value {
			continue
		}
		updates = append(updates, v.key.ValueSet(v.value))
		p.searchAttrs[name] = v.value
	}
	if len(updates) == 0 {
		return
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
		// Only an unserialisable value fails here; visibility is not worth
		// failing the policy for.
		p.logger.Warn("search attributes not updated", "error", err)
	}
}

// detailsEvents is how many recent events the current details show.
const detailsEvents = 10

// setCurrentDetails shows the state and the last events' callbacks in the
// Temporal UI as a small Markdown table. Stages, statuses, codes and TOP's
// messages only: no personal data. Setting it costs no history event.
func (p *policy) setCurrentDetails(ctx workflow.Context) {
	var b strings.Builder
	fmt.Fprintf(&b, "**%s**", p.lifecycle.State())
	if n := p.lifecycle.Endorsements(); n > 0 {
		fmt.Fprintf(&b, ", %d endorsements", n)
	}
	fmt.Fprintf(&b, " · callbacks %s · %d queued\n\n", p.callbackState(), len(p.fifo))
	b.WriteString("| # | stage | status | callback | attempts | last error |\n")
	b.WriteString("|--:|---|---|---|--:|---|\n")
	for _, e := range p.events[max(0, len(p.events)-detailsEvents):] {
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %d | %s |\n",
			e.Seq, e.Stage, e.Status, e.Callback, e.Attempts, markdownCell(e.LastError))
	}
	workflow.SetCurrentDetails(ctx, b.String())
}

// markdownCell keeps a message on one table row and short.
func markdownCell(s string) string {
	const limit = 80
	s = strings.Join(strings.Fields(s), " ")
	s = strings.ReplaceAll(s, "|", `\|`)
	if r := []rune(s); len(r) > limit {
		s = string(r[:limit]) + "…"
	}
	return s
}
