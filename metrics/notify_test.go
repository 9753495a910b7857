package metrics

import (
	"testing"

	"github.com/insuranceflow/insuranceflow/notify"
)

func TestNotifications(t *testing.T) {
	m, reg := newMetrics(t)
	// Every type's series exist at zero before anything is sent.
	for _, typ := range notify.Types() {
		for _, outcome := range []string{"sent", "failed"} {
			if v := series(t, family(t, reg, NameNotifications), map[string]string{"type": string(typ), "outcome": outcome}).GetCounter().GetValue(); v != 0 {
				t.Fatalf("%s %s = %g before anything happened, want 0", typ, outcome, v)
			}
		}
	}
	m.NotificationFailed(notify.TypeParked)
	m.NotificationFailed(notify.TypeParked)
	m.NotificationSent(notify.TypeParked)
	m.NotificationSent(notify.TypeDelivered)
	m.NotificationLost(notify.TypeRetrying)
	m.NotificationSent("callback.made-up") // a type this version does not know: "other"
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{NameNotifications, map[string]string{"type": "callback.parked", "outcome": "failed"}, 2},
		{NameNotifications, map[string]string{"type": "callback.parked", "outcome": "sent"}, 1},
		{NameNotifications, map[string]string{"type": "callback.delivered", "outcome": "sent"}, 1},
		{NameNotifications, map[string]string{"type": "other", "outcome": "sent"}, 1},
		{NameNotificationsLost, map[string]string{"type": "callback.retrying"}, 1},
		{NameNotificationsLost, map[string]string{"type": "callback.delivered"}, 0},
	} {
		if got := series(t, family(t, reg, c.name), c.labels).GetCounter().GetValue(); got != c.want {
			t.Errorf("%s%v = %g, want %g", c.name, c.labels, got, c.want)
		}
	}
	var nilMetrics *Metrics
	nilMetrics.NotificationSent(notify.TypeDelivered)
	nilMetrics.NotificationFailed(notify.TypeDelivered)
	nilMetrics.NotificationLost(notify.TypeDelivered)
}
