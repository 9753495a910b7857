package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

func noEnv(string) string { return "" }

func TestParseFlags(t *testing.T) {
	t.Run("defaults are the full run", func(t *testing.T) {
		c, err := parseFlags(nil, noEnv, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if c.Policies != 300 || c.FaultWindow != 75*time.Second || c.JSONPath != "bench-results/chaos.json" || c.TemporalBin != ".bin/temporal" {
			t.Fatalf("defaults = %+v", c)
		}
	})
	t.Run("-short, with an explicit flag winning", func(t *testing.T) {
		c, err := parseFlags([]string{"-short", "-policies", "50"}, noEnv, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if c.Policies != 50 || c.FaultWindow != shortDefaults().FaultWindow || c.KillEvery != shortDefaults().KillEvery || c.Concurrency != shortDefaults().Concurrency {
			t.Fatalf("short config = %+v, want 50 policies and the short defaults otherwise", c)
		}
	})
	t.Run("TEMPORAL_BIN", func(t *testing.T) {
		c, err := parseFlags(nil, func(k string) string {
			if k == "TEMPORAL_BIN" {
				return "/opt/temporal"
			}
			return ""
		}, io.Discard)
		if err != nil || c.TemporalBin != "/opt/temporal" {
			t.Fatalf("TemporalBin = %q (%v), want /opt/temporal", c.TemporalBin, err)
		}
	})
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"bad numbers", []string{"-policies", "0", "-concurrency", "-1", "-seed", "x"},
			[]string{"-policies: must be at least 1, got 0", "-concurrency: must be at least 1, got -1", `-seed: "x" is not a non-negative integer`}},
		{"events outside the window", []string{"-fault-window", "10s", "-ban-at", "12s"},
			[]string{"-ban-at (12s) and -temporal-at (40s) must fall inside -fault-window (10s)"}},
		{"stray arguments", []string{"now"}, []string{`unexpected arguments ["now"]`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFlags(tc.args, noEnv, io.Discard)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestRunExitCodes(t *testing.T) {
	var stderr bytes.Buffer
	if code := run(t.Context(), []string{"-policies", "0"}, noEnv, io.Discard, &stderr); code != 2 {
		t.Errorf("bad flags: exit %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), "-policies") {
		t.Errorf("stderr %q does not name the bad flag", stderr.String())
	}
	stderr.Reset()
	code := run(t.Context(), []string{"-temporal-bin", "/nonexistent/temporal", "-json", ""}, noEnv, io.Discard, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "make temporal") {
		t.Errorf("missing Temporal CLI: exit %d, stderr %q; want 1 and a hint to run make temporal", code, stderr.String())
	}
}
