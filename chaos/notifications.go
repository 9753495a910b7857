package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/insuranceflow/insuranceflow/devstack"
	"github.com/insuranceflow/insuranceflow/store"
	"github.com/insuranceflow/insuranceflow/topsim/receiver"
)

// Every worker of the chaos stack notifies topsim's receiver, which
// verifies each signature. A notification counts as lost when TOP holds a
// delivered callback whose callback.delivered notification never reached
// the receiver, or when the store recorded one as lost (its budget ran
// out): through every fault, both must be zero.

// notificationState is what the receiver and the store hold at the end.
type notificationState struct {
	Received   []receiver.Receipt
	Stats      receiver.Stats
	StoreLost  int64
	ReadErrors []string
}

// readNotifications reads the receiver's list and the store's count.
func readNotifications(ctx context.Context, c *http.Client, stack *devstack.Stack, st *store.Store) notificationState {
	var s notificationState
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, stack.TopsimURL+"/_sim/notifications", nil)
	if err == nil {
		var resp *http.Response
		if resp, err = c.Do(req); err == nil {
			var list receiver.List
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err = json.Unmarshal(body, &list); err == nil {
				s.Received, s.Stats = list.Notifications, list.Stats
			}
		}
	}
	if err != nil {
		s.ReadErrors = append(s.ReadErrors, "receiver: "+err.Error())
	}
	if s.StoreLost, err = st.CountLostNotifications(ctx); err != nil {
		s.ReadErrors = append(s.ReadErrors, "store: "+err.Error())
	}
	return s
}

// undelivered lists TOP's deliveries (by the event's request id) without
// a callback.delivered notification at the receiver.
func (s notificationState) undelivered(receipts []devstack.Receipt) violations {
	got := map[string]bool{}
	for _, r := range s.Received {
		if r.Type == "callback.delivered" {
			got[r.BizID+"/"+r.RequestID] = true
		}
	}
	v := violations{}
	seen := map[string]bool{}
	for _, r := range receipts {
		key := r.BizID + "/" + r.RequestID
		if seen[key] || got[key] {
			continue
		}
		seen[key] = true
		v.add(r.BizID, "request %s delivered to TOP, never notified", r.RequestID)
	}
	return v
}

// waitNotified waits up to settle for every TOP delivery to be notified.
func waitNotified(ctx context.Context, c *http.Client, stack *devstack.Stack, st *store.Store, settle time.Duration) notificationState {
	deadline := time.Now().Add(settle)
	for {
		s := readNotifications(ctx, c, stack, st)
		receipts, err := stack.Callbacks(ctx, "")
		if err == nil && len(s.ReadErrors) == 0 && s.undelivered(receipts).count() == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return s
		}
		_ = sleepCtx(ctx, 500*time.Millisecond)
	}
}

// notificationFigures: received, re-sent, and the three invariants: none
// lost, none refused (every signature verified), none out of order.
func notificationFigures(in checkInput) []figure {
	n := in.Obs.Notifications
	var dups int64
	for _, r := range n.Received {
		if r.Duplicate {
			dups++
		}
	}
	lost := n.undelivered(in.Obs.Receipts)
	if n.StoreLost > 0 {
		lost.add("(store)", "%d notifications recorded lost (retry budget ran out)", n.StoreLost)
	}
	for _, e := range n.ReadErrors {
		lost.add("(read)", "%s", e)
	}
	refused := violations{}
	for reason, count := range n.Stats.Refused {
		refused.add("(receiver)", "%d refused: %s", count, reason)
	}
	// Per policy, first sendings of callback.delivered come in seq order.
	disorder := violations{}
	last := map[string]int64{}
	for _, r := range n.Received {
		if r.Duplicate || r.Type != "callback.delivered" {
			continue
		}
		if r.Seq <= last[r.BizID] {
			disorder.add(r.BizID, "seq %d notified after seq %d", r.Seq, last[r.BizID])
		}
		last[r.BizID] = max(last[r.BizID], r.Seq)
	}
	return []figure{
		info(groupNotify, "notifications received (verified)", int64(len(n.Received))-dups),
		info(groupNotify, "re-sent notifications (same webhook-id, dropped by the receiver)", dups),
		info(groupNotify, "notification attempts refused while the receiver was down", n.Stats.WhileDown),
		invariant(groupNotify, "notifications lost (a TOP delivery never notified, or recorded lost)", lost),
		invariant(groupNotify, "notifications whose signature did not verify", refused),
		invariant(groupNotify, "delivered notifications out of order within a policy", disorder),
	}
}
