package actions

import (
	"os"
	"strings"
	"testing"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
)

func load(t *testing.T, path string) []*historypb.HistoryEvent {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var h historypb.History
	if err := (temporalproto.CustomJSONUnmarshalOptions{}).Unmarshal(b, &h); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	return h.GetEvents()
}

// The recorded happy lifecycle (five events, delivered first time) from a
// real dev server.
func TestOfRecordedLifecycle(t *testing.T) {
	c := Of(load(t, "../workflows/testdata/lifecycle.json"))
	if c.Starts != 1 || c.Updates != 5 || c.Activities != 5 || c.ActivityRetries != 0 || c.Signals != 0 {
		t.Fatalf("count = %+v, want 1 start, 5 updates, 5 activities, no retries or signals", c)
	}
	if c.Total() > 16 {
		t.Fatalf("total = %d (%+v), want at most 16 per 5-event lifecycle", c.Total(), c)
	}
}

// A callback that hung past the client timeout was retried: the retry shows.
func TestOfRecordedRetry(t *testing.T) {
	c := Of(load(t, "../workflows/testdata/hang-retry.json"))
	if c.Activities+c.ActivityRetries < 2 {
		t.Fatalf("count = %+v, want at least two activity attempts", c)
	}
	if c.Timers < 1 {
		t.Fatalf("count = %+v, want the backoff timer", c)
	}
}

func TestMarkdown(t *testing.T) {
	md := Markdown([]string{"a", "b"}, []Count{{Starts: 1, Updates: 5}, {Starts: 2}})
	for _, want := range []string{"| action | a | b |", "| workflow start | 1 | 2 |", "| updates accepted | 5 | 0 |", "| **total** | **6** | **2** |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}
