package workflows

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"

	"github.com/insuranceflow/insuranceflow/activities"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/notify"
)

// receiverMock stands in for SendNotification: down until upAt (virtual
// time since the start), then it acknowledges everything.
type receiverMock struct {
	h    *harness
	upAt time.Duration

	mu       sync.Mutex
	received []notify.Notification
	sentAt   []time.Duration
	lost     []activities.LostNotification
}

func (r *receiverMock) install() {
	r.h.env.OnActivity(acts.SendNotification, mock.Anything, mock.Anything).Return(func(_ context.Context, n notify.Notification) error {
		now := r.h.env.Now().Sub(r.h.start)
		if now < r.upAt {
			return errors.New("notification receiver answered HTTP 503 Service Unavailable")
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.received = append(r.received, n)
		r.sentAt = append(r.sentAt, now)
		return nil
	})
	r.h.env.OnActivity(acts.RecordLostNotification, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.LostNotification) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.lost = append(r.lost, in)
		return nil
	})
}

func (r *receiverMock) kinds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.received))
	for i, n := range r.received {
		out[i] = fmt.Sprintf("%d:%s", n.Seq, n.Type)
	}
	return out
}

func notifySettings() Settings {
	// The test environment gives up on an activity after 10 attempts
	// (the server never does), so the backoff grows to 2 min to cover the
	// receiver's downtime within them.
	return Settings{RetryInitialInterval: time.Second, RetryMaxInterval: 2 * time.Minute, Notify: true}
}

// A receiver that is down for five minutes delays only the notifications: every
// callback goes to TOP on time, and once the receiver is back every
// outcome arrives, in order, each once, with TOP's answer; the run stays
// open until they are all sent.
func TestNotificationsInOrderAndNeverHoldTheFIFO(t *testing.T) {
	h := newHarness(t)
	h.startAttributes("pre_insured")
	rcv := &receiverMock{h: h, upAt: 5 * time.Minute}
	rcv.install()
	h.fail(2, serviceDown)   // retried once, then delivered
	h.fail(3, rejectedByTOP) // parked
	events := lifecycle()
	for i, e := range events[:3] {
		h.report(time.Duration(i)*time.Second, e)
	}
	h.operator(2*time.Minute, UpdateRetryCallback)
	h.report(3*time.Minute, events[3])
	h.report(4*time.Minute, events[4])
	h.run(PolicyInput{BizID: testBizID, Settings: notifySettings()})
	st := h.result()
	if st.State != "cancelled" {
		t.Fatalf("state = %s, want cancelled", st.State)
	}
	// TOP got everything long before the receiver came back.
	for _, c := range h.calls {
		if c.At >= rcv.upAt {
			t.Fatalf("callback #%d attempt %d at %s: the FIFO waited for the receiver", c.Seq, c.Attempt, c.At)
		}
	}
	want := []string{
		"1:callback.delivered", "2:callback.retrying", "2:callback.delivered", "3:callback.parked",
		"3:callback.retried", "3:callback.delivered", "4:callback.delivered", "5:callback.delivered",
	}
	if got := rcv.kinds(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("notifications = %v, want %v", got, want)
	}
	if rcv.sentAt[0] < rcv.upAt {
		t.Fatalf("first notification acknowledged at %s, before the receiver was up", rcv.sentAt[0])
	}
	parked := rcv.received[3]
	if parked.FailCode != "POLICY_NOT_FOUND" || parked.FailMessage != "no such policy" || parked.Callback != "parked" ||
		parked.ErrorClass != "rejected" || parked.Stage != "insure" || parked.Status != "success" {
		t.Fatalf("parked notification = %+v, want TOP's fail_code and fail_message", parked)
	}
	retried := rcv.received[4]
	if retried.Reason != "checked with TOP support" || retried.Callback != "queued" {
		t.Fatalf("retried notification = %+v, want the operator's reason", retried)
	}
	if d := rcv.received[0]; d.TOPRequestID != "top-1-1" || d.Attempts != 1 || d.RequestID == "" || d.ID != notify.ID(testBizID, 1, notify.TypeDelivered, 1) {
		t.Fatalf("delivered notification = %+v", d)
	}
	seen := map[string]bool{}
	for _, n := range rcv.received {
		if seen[n.ID] {
			t.Fatalf("webhook-id %s used twice", n.ID)
		}
		seen[n.ID] = true
		body, _ := n.Body()
		if strings.Contains(string(body), testManagerName) {
			t.Fatalf("notification body holds the account manager's name: %s", body)
		}
	}
	if len(rcv.lost) != 0 {
		t.Fatalf("lost = %+v, want none", rcv.lost)
	}
}

// A notification whose budget runs out is recorded as lost and the next
// one goes; the run then completes.
func TestNotificationOutOfBudgetIsRecordedLost(t *testing.T) {
	h := newHarness(t)
	h.startAttributes("pre_insured")
	rcv := &receiverMock{h: h, upAt: 10 * time.Minute}
	rcv.install()
	h.report(0, ev(insurance.StagePreInsure, insurance.StatusSuccess, "2024-01-09 10:00:00"))
	h.report(time.Hour, ev(insurance.StageUnderwrite, insurance.StatusSuccess, "2024-01-09 11:00:00"))
	s := notifySettings()
	s.NotifyRetryBudget = 2 * time.Minute
	s.IdleTimeout = 3 * time.Hour
	h.run(PolicyInput{BizID: testBizID, Settings: s})
	h.result()
	if len(rcv.lost) != 1 || rcv.lost[0].Notification.Seq != 1 || rcv.lost[0].Notification.Type != notify.TypeDelivered ||
		!strings.Contains(rcv.lost[0].LastError, "503") {
		t.Fatalf("lost = %+v, want seq 1's delivered notification, with the receiver's answer", rcv.lost)
	}
	if got := rcv.kinds(); strings.Join(got, " ") != "2:callback.delivered" {
		t.Fatalf("notifications = %v, want only seq 2's", got)
	}
}

// Without Notify a run schedules no notification at all: a lifecycle
// costs what it cost before notifications existed.
func TestNoNotificationsWhenOff(t *testing.T) {
	h := newHarness(t)
	h.startAttributes("pre_insured")
	rcv := &receiverMock{h: h}
	rcv.install()
	for i, e := range lifecycle() {
		h.report(time.Duration(i)*time.Second, e)
	}
	h.run(PolicyInput{BizID: testBizID})
	h.result()
	if got := rcv.kinds(); len(got) != 0 {
		t.Fatalf("notifications = %v, want none", got)
	}
}

// Continue-as-new carries the queue: what the receiver has not
// acknowledged is in the next run's input, in order.
func TestContinueAsNewCarriesNotifications(t *testing.T) {
	h := newHarness(t)
	h.startAttributes("pre_insured")
	rcv := &receiverMock{h: h, upAt: 1000 * time.Hour}
	rcv.install()
	events := lifecycle()
	for i, e := range events[:2] {
		h.report(time.Duration(i)*time.Second, e)
	}
	s := notifySettings()
	s.ContinueAsNewAfter = 2
	h.env.ExecuteWorkflow(WorkflowName, PolicyInput{BizID: testBizID, Settings: s})
	next := h.continuedWith()
	// The run continues as new once its second event is accepted, after
	// the first callback was delivered and before the second is sent.
	if next.Snapshot == nil || len(next.Snapshot.PendingNotifications) != 1 {
		t.Fatalf("continued with %+v, want 1 pending notification", next.Snapshot)
	}
	for i, p := range next.Snapshot.PendingNotifications {
		if p.Notification.Seq != int64(i+1) || p.Notification.Type != notify.TypeDelivered {
			t.Fatalf("pending notification %d = %+v", i, p.Notification)
		}
	}
	if !next.Settings.Notify {
		t.Fatal("the next run's settings lost Notify")
	}
}
