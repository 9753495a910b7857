package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// startLog is the "starting" line run writes, for cfg.
func startLog(cfg config) string {
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("starting", "config", cfg)
	return buf.String()
}

// TestStartLogShowsEffectiveSettings: the start line shows the values the
// worker runs with, defaults applied, not the zero values that stand for
// "the default" in the config (retry_initial_interval=0s and the like).
func TestStartLogShowsEffectiveSettings(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		cfg, err := parse(t, nil, minimal())
		if err != nil {
			t.Fatal(err)
		}
		line := startLog(cfg)
		for _, want := range []string{
			"config.retry_initial_interval=1s",
			"config.retry_backoff=2",
			"config.retry_max_interval=5m0s",
			"config.retry_budget=24h0m0s",
			"config.idle_timeout=720h0m0s",
			"config.empty_run_grace=1m0s",
			"config.continue_as_new_after=500",
			"config.top_call_timeout=30s",
			"config.top_connect_timeout=15s",
			"config.max_future_skew=10m0s",
			"config.temporal_call_timeout=5s",
		} {
			if !strings.Contains(line, want+" ") && !strings.HasSuffix(strings.TrimSpace(line), want) {
				t.Errorf("start log lacks %s:\n%s", want, line)
			}
		}
		if strings.Contains(line, "=0s") {
			t.Errorf("start log shows a zero duration:\n%s", line)
		}
	})
	t.Run("overrides", func(t *testing.T) {
		cfg, err := parse(t, nil, with(minimal(), "RETRY_INITIAL_INTERVAL", "200ms", "RETRY_BACKOFF", "1.5",
			"CONTINUE_AS_NEW_AFTER", "100", "TOP_CALL_TIMEOUT", "2s", "MAX_FUTURE_SKEW", "1m"))
		if err != nil {
			t.Fatal(err)
		}
		line := startLog(cfg)
		for _, want := range []string{"config.retry_initial_interval=200ms", "config.retry_backoff=1.5",
			"config.continue_as_new_after=100", "config.top_call_timeout=2s", "config.max_future_skew=1m0s"} {
			if !strings.Contains(line, want) {
				t.Errorf("start log lacks %s:\n%s", want, line)
			}
		}
	})
}
