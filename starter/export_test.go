package main

import (
	"encoding/csv"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// TestExportReadsTheStore exports seedStore's two events from a real SQLite
// file, without Temporal, as NDJSON and CSV, filtered and not, and never
// writes the payload's personal data.
func TestExportReadsTheStore(t *testing.T) {
	url := seedStore(t)
	run := func(args ...string) string {
		t.Helper()
		c, b := liveCLI()
		res := c.run(t, append([]string{"--database-url", url, "--address", unreachableAddress(t), "export"}, args...)...)
		if res.code != exitOK {
			t.Fatalf("export %v: exit=%d, stderr=%s", args, res.code, res.stderr)
		}
		if b.temporal != nil {
			t.Fatalf("export dialled Temporal")
		}
		if strings.Contains(res.stdout, managerName) {
			t.Fatalf("export wrote personal data:\n%s", res.stdout)
		}
		return res.stdout
	}

	t.Run("ndjson", func(t *testing.T) {
		lines := strings.Split(strings.TrimSpace(run()), "\n")
		if len(lines) != 2 {
			t.Fatalf("%d lines, want 2:\n%s", len(lines), strings.Join(lines, "\n"))
		}
		var first map[string]any
		if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"biz_id": "H1", "seq": 1.0, "stage": "pre_insure", "status": "success", "callback": "delivered",
			"attempts": 2.0, "top_request_id": "top-req-2", "state": "pre_insured"}
		for k, v := range want {
			if first[k] != v {
				t.Errorf("%s=%v, want %v (row %s)", k, first[k], v, lines[0])
			}
		}
		if first["delivered_at"] == nil || first["request_id"] == "" {
			t.Errorf("row lacks delivered_at or request_id: %s", lines[0])
		}
	})
	t.Run("csv filtered", func(t *testing.T) {
		records, err := csv.NewReader(strings.NewReader(run("--format", "csv", "--state", "delivered"))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(records) != 2 || !reflect.DeepEqual(records[0][:3], []string{"biz_id", "seq", "request_id"}) {
			t.Fatalf("records=%q, want a header and one row", records)
		}
		if got := records[1]; got[0] != "H1" || got[1] != "1" || got[8] != "delivered" || got[10] == "" || got[11] != "top-req-2" {
			t.Fatalf("row=%q, want H1 seq 1 delivered, with its time and top-req-2", got)
		}
	})
	t.Run("since excludes earlier events", func(t *testing.T) {
		// seq 1 was accepted 01:56:01 UTC, seq 2 01:57:01 UTC (09:57:01 in Beijing).
		out := run("--since", "2025-04-08 09:57:00")
		if strings.Count(out, "\n") != 1 || !strings.Contains(out, `"seq":2`) {
			t.Fatalf("out=%s, want only seq 2", out)
		}
		if out := run("--until", "2025-04-08T01:57:00Z"); strings.Count(out, "\n") != 1 || !strings.Contains(out, `"seq":1`) {
			t.Fatalf("until: out=%s, want only seq 1", out)
		}
	})
	t.Run("bad flags name themselves", func(t *testing.T) {
		c, _ := liveCLI()
		res := c.run(t, "--database-url", url, "export", "--since", "yesterday", "--state", "sent", "--format", "xml")
		if res.code != exitBadInput {
			t.Fatalf("exit=%d, want %d", res.code, exitBadInput)
		}
		for _, want := range []string{`--since: "yesterday" is not a time`, `--state: unknown callback state "sent"`, `--format: "xml" is not ndjson or csv`} {
			if !strings.Contains(res.stderr, want) {
				t.Errorf("stderr=%q, want it to contain %q", res.stderr, want)
			}
		}
	})
}
