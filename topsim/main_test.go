package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/top"
	"github.com/insuranceflow/insuranceflow/topsim/simulator"
)

const secretValue = "main-test-secret"

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseConfig(t *testing.T) {
	t.Run("environment fallbacks", func(t *testing.T) {
		cfg, err := parseConfig(nil, envOf(map[string]string{
			"TOP_APP_KEY":           "k1",
			"TOP_APP_SECRET":        secretValue,
			"TOPSIM_ADDR":           "127.0.0.1:0",
			"TOPSIM_SEED":           "42",
			"TOPSIM_LATENCY":        "250ms",
			"TOPSIM_ISP_ERROR_RATE": "0.2",
			"TOPSIM_REJECT_PATTERN": "^REJ",
			"TOPSIM_QPS_LIMIT":      "5",
		}), io.Discard)
		if err != nil {
			t.Fatalf("parseConfig: %v", err)
		}
		if cfg.sim.AppKey != "k1" || cfg.sim.AppSecret.Reveal() != secretValue || cfg.addr != "127.0.0.1:0" || cfg.sim.Seed != 42 {
			t.Fatalf("config=%+v, want key k1, the secret, addr 127.0.0.1:0, seed 42", cfg)
		}
		want := simulator.Faults{
			ISPErrorRate: 0.2, Latency: 250 * time.Millisecond, HangDuration: simulator.DefaultHangDuration,
			RejectBizIDPattern: "^REJ", RejectFailCode: simulator.DefaultRejectFailCode, RejectFailMessage: simulator.DefaultRejectFailMessage,
			QPSLimit: 5, QPSBanSeconds: simulator.DefaultQPSBanSeconds,
		}
		if cfg.sim.Faults != want {
			t.Fatalf("faults=%+v, want %+v", cfg.sim.Faults, want)
		}
	})

	t.Run("flags beat the environment", func(t *testing.T) {
		cfg, err := parseConfig([]string{"-app-key", "flagkey", "-addr", "127.0.0.1:9", "-hang-rate", "0.5"},
			envOf(map[string]string{"TOP_APP_KEY": "envkey", "TOP_APP_SECRET": secretValue, "TOPSIM_ADDR": "127.0.0.1:8", "TOPSIM_HANG_RATE": "0.1"}), io.Discard)
		if err != nil {
			t.Fatalf("parseConfig: %v", err)
		}
		if cfg.sim.AppKey != "flagkey" || cfg.addr != "127.0.0.1:9" || cfg.sim.Faults.HangRate != 0.5 {
			t.Fatalf("config=%+v, want the flags' values", cfg)
		}
		if cfg.addr == "" || cfg.sim.MaxSkew != simulator.DefaultMaxSkew {
			t.Fatalf("max skew=%v, want the default", cfg.sim.MaxSkew)
		}
	})

	t.Run("defaults", func(t *testing.T) {
		cfg, err := parseConfig([]string{"-app-key", "k", "-app-secret", secretValue}, envOf(nil), io.Discard)
		if err != nil {
			t.Fatalf("parseConfig: %v", err)
		}
		if cfg.addr != DefaultAddr || cfg.receipts != "" {
			t.Fatalf("addr=%q receipts=%q, want %q and none", cfg.addr, cfg.receipts, DefaultAddr)
		}
	})

	t.Run("secret file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "secret")
		if err := os.WriteFile(path, []byte(secretValue+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := parseConfig(nil, envOf(map[string]string{"TOP_APP_KEY": "k", "TOP_APP_SECRET_FILE": path}), io.Discard)
		if err != nil {
			t.Fatalf("parseConfig: %v", err)
		}
		if cfg.sim.AppSecret.Reveal() != secretValue {
			t.Fatalf("secret from file is wrong (trailing newline not trimmed?)")
		}
	})

	errorCases := []struct {
		name    string
		args    []string
		env     map[string]string
		mention string
	}{
		{"missing key and secret", nil, nil, "app key (-app-key or TOP_APP_KEY) and an app secret"},
		{"missing secret", []string{"-app-key", "k"}, nil, "missing an app secret"},
		{"secret and secret file", []string{"-app-key", "k", "-app-secret", secretValue, "-app-secret-file", "/nonexistent"}, nil, "give one"},
		{"unreadable secret file", []string{"-app-key", "k", "-app-secret-file", "/nonexistent/secret"}, nil, "read app secret file"},
		{"bad env value", nil, map[string]string{"TOP_APP_KEY": "k", "TOP_APP_SECRET": secretValue, "TOPSIM_LATENCY": "soon"}, "TOPSIM_LATENCY"},
		{"bad flag", []string{"-latency", "soon"}, nil, "-latency"},
		{"stray argument", []string{"-app-key", "k", "-app-secret", secretValue, "extra"}, nil, "extra"},
	}
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig(tc.args, envOf(tc.env), io.Discard)
			var uerr *usageError
			if !errors.As(err, &uerr) {
				t.Fatalf("error=%v, want a usage error (exit 2)", err)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("error=%q, want it to mention %q", err, tc.mention)
			}
			if strings.Contains(err.Error(), secretValue) {
				t.Fatalf("error=%q contains the secret", err)
			}
		})
	}

	t.Run("help", func(t *testing.T) {
		var usage bytes.Buffer
		_, err := parseConfig([]string{"-h"}, envOf(map[string]string{"TOP_APP_SECRET": secretValue}), &usage)
		if !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("error=%v, want flag.ErrHelp", err)
		}
		if !strings.Contains(usage.String(), "-isp-error-rate") || strings.Contains(usage.String(), secretValue) {
			t.Fatalf("usage=%s, want the fault flags and no secret", usage.String())
		}
	})
}

func TestRunServesAndShutsDown(t *testing.T) {
	receipts := filepath.Join(t.TempDir(), "receipts.jsonl")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdoutR, stdoutW := io.Pipe()
	var logs syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-receipts", receipts, "-hang-rate", "1"},
			envOf(map[string]string{"TOP_APP_KEY": "k", "TOP_APP_SECRET": secretValue}), stdoutW, &logs)
		stdoutW.Close()
	}()

	line, err := bufio.NewReader(stdoutR).ReadString('\n')
	if err != nil {
		t.Fatalf("read the listening line: %v (logs: %s)", err, logs.String())
	}
	go io.Copy(io.Discard, stdoutR)
	base, ok := strings.CutPrefix(strings.TrimSpace(line), "topsim listening on ")
	if !ok || strings.HasSuffix(base, ":0/router/rest") {
		t.Fatalf("stdout line %q, want the real listening URL", line)
	}
	base = strings.TrimSuffix(base, "/router/rest")

	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	var health map[string]string
	err = json.NewDecoder(resp.Body).Decode(&health)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || health["status"] != "ok" {
		t.Fatalf("GET /healthz: HTTP %d %v", resp.StatusCode, health)
	}

	// A request hanging in an injected 40 s hang must not hold up shutdown.
	hung := make(chan struct{})
	go func() {
		defer close(hung)
		r, err := http.Post(base+"/router/rest", "application/x-www-form-urlencoded", strings.NewReader(validRequest(t)))
		if err == nil {
			r.Body.Close()
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for fetchStats(t, base).InFlight != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the hanging request never reached the gateway")
		}
		time.Sleep(10 * time.Millisecond)
	}

	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v, want nil after a graceful shutdown", err)
		}
	case <-time.After(4 * time.Second):
		t.Fatalf("run did not return within 4s of the signal")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("shutdown took %v with a hung request, want well under the hang", d)
	}
	<-hung
	if _, err := os.Stat(receipts); err != nil {
		t.Fatalf("receipts file: %v, want it created at start", err)
	}
	out := logs.String()
	if !strings.Contains(out, "topsim listening") || !strings.Contains(out, "outcome=hang") {
		t.Fatalf("logs lack the listening line or the hang:\n%s", out)
	}
	if strings.Contains(out, secretValue) {
		t.Fatalf("logs contain the secret:\n%s", out)
	}
}

// fetchStats reads GET /_sim/stats.
func fetchStats(t *testing.T, base string) simulator.Stats {
	t.Helper()
	resp, err := http.Get(base + "/_sim/stats")
	if err != nil {
		t.Fatalf("GET /_sim/stats: %v", err)
	}
	defer resp.Body.Close()
	var st simulator.Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("decode stats: %v", err)
	}
	return st
}

// validRequest is a correctly signed callback for run's key and secret.
func validRequest(t *testing.T) string {
	t.Helper()
	p := url.Values{}
	p.Set(top.ParamMethod, top.APIMethod)
	p.Set(top.ParamAppKey, "k")
	p.Set(top.ParamTimestamp, top.Timestamp(time.Now()))
	p.Set(top.ParamFormat, top.FormatJSON)
	p.Set(top.ParamVersion, top.Version)
	p.Set(top.ParamSignMethod, string(top.SignHMACSHA256))
	p.Set(top.ParamRequest, `{"biz_id":"B1","stage":1,"status":1,"time_of_occurrence":"2025-04-08 09:55:00","insurance_type":1}`)
	sign, err := top.Sign(p, top.Secret(secretValue), top.SignHMACSHA256)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	p.Set(top.ParamSign, sign)
	return p.Encode()
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines to log into
// while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
