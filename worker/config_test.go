package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/activities"
	"github.com/insuranceflow/insuranceflow/temporalconn"
	"github.com/insuranceflow/insuranceflow/tlscerts"
	"github.com/insuranceflow/insuranceflow/top"
	"github.com/insuranceflow/insuranceflow/workflows"
)

const (
	appSecret    = "app-secret-value-123"
	sessionKey   = "session-key-value-456"
	ingressToken = "ingress-token-value-789"
)

// env is a getenv over a map.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// minimal is the least environment the worker and the ingress start with.
func minimal() map[string]string {
	return map[string]string{
		"TOP_APP_KEY":    "12345678",
		"TOP_APP_SECRET": appSecret,
		"INGRESS_TOKENS": ingressToken,
		// No temporal.toml: the tests never read the user's profiles.
		"TEMPORAL_CONFIG_FILE": "testdata/no-such-temporal.toml",
	}
}

func with(m map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func parse(t *testing.T, args []string, e map[string]string) (config, error) {
	t.Helper()
	var usage bytes.Buffer
	return parseConfig(args, env(e), &usage)
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := parse(t, nil, minimal())
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	if cfg.Temporal.Options.HostPort != "127.0.0.1:7233" || cfg.Temporal.Profile != "default" || cfg.Temporal.TLS() {
		t.Fatalf("temporal=%+v, want the dev server, profile default, no TLS", cfg.Temporal)
	}
	cfg.Temporal = temporalconn.Conn{}
	want := config{
		WorkerStopTimeout:   40 * time.Second,
		Warnings:            []string{},
		TemporalAddress:     "127.0.0.1:7233",
		TemporalNamespace:   "default",
		TaskQueue:           workflows.DefaultTaskQueue,
		DatabaseURL:         "sqlite://.data/insuranceflow.db",
		TOPGatewayURL:       "http://127.0.0.1:8788/router/rest",
		TOPAppKey:           "12345678",
		TOPAppSecret:        top.Secret(appSecret),
		TOPSignMethod:       top.SignHMACSHA256,
		TOPQPSMargin:        activities.DefaultQPSMargin,
		HTTPAddr:            "127.0.0.1:8080",
		IngressTokens:       []top.Secret{ingressToken},
		MaxFutureSkew:       10 * time.Minute,
		TemporalCallTimeout: 5 * time.Second,
		IngressEnabled:      true,
		WorkerEnabled:       true,
		WorkflowCacheSize:   2000,
		SweepInterval:       time.Minute,
		Settings:            workflows.Settings{Pipeline: true},
		LogLevel:            slog.LevelInfo,
		LogFormat:           "text",
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("config=%+v\nwant   %+v", cfg, want)
	}
}

func TestConfigEnvironmentAndFlags(t *testing.T) {
	e := with(minimal(),
		"TEMPORAL_ADDRESS", "temporal.env:7233",
		"TEMPORAL_NAMESPACE", "insurance",
		"TASK_QUEUE", "env-queue",
		"DATABASE_URL", "sqlite:///var/lib/env.db",
		"TOP_GATEWAY_URL", "https://eco.taobao.com/router/rest",
		"TOP_SIGN_METHOD", "md5",
		"TOP_SESSION", sessionKey,
		"TOP_QPS", "5",
		"TOP_QPS_MARGIN", "80ms",
		"HTTP_ADDR", ":9090",
		"INGRESS_TOKENS", " one , two ,,",
		"RETRY_INITIAL_INTERVAL", "2s",
		"RETRY_MAX_INTERVAL", "10m",
		"RETRY_BUDGET", "48h",
		"IDLE_TIMEOUT", "240h",
		"LOG_LEVEL", "debug",
		"LOG_FORMAT", "json",
	)
	t.Run("environment", func(t *testing.T) {
		cfg, err := parse(t, nil, e)
		if err != nil {
			t.Fatalf("parseConfig: %v", err)
		}
		checks := []struct {
			name      string
			got, want any
		}{
			{"address", cfg.TemporalAddress, "temporal.env:7233"},
			{"namespace", cfg.TemporalNamespace, "insurance"},
			{"task queue", cfg.TaskQueue, "env-queue"},
			{"database", cfg.DatabaseURL, "sqlite:///var/lib/env.db"},
			{"gateway", cfg.TOPGatewayURL, "https://eco.taobao.com/router/rest"},
			{"sign method", cfg.TOPSignMethod, top.SignMD5},
			{"session", cfg.TOPSession, top.Secret(sessionKey)},
			{"qps", cfg.TOPQPS, 5},
			{"qps margin", cfg.TOPQPSMargin, 80 * time.Millisecond},
			{"http addr", cfg.HTTPAddr, ":9090"},
			{"tokens", cfg.IngressTokens, []top.Secret{"one", "two"}},
			{"settings", cfg.Settings, workflows.Settings{RetryInitialInterval: 2 * time.Second, RetryMaxInterval: 10 * time.Minute,
				RetryBudget: 48 * time.Hour, IdleTimeout: 240 * time.Hour, Pipeline: true}},
			{"log level", cfg.LogLevel, slog.LevelDebug},
			{"log format", cfg.LogFormat, "json"},
		}
		for _, c := range checks {
			if !reflect.DeepEqual(c.got, c.want) {
				t.Errorf("%s=%v, want %v", c.name, c.got, c.want)
			}
		}
	})
	t.Run("flags win over the environment", func(t *testing.T) {
		cfg, err := parse(t, []string{
			"--address", "temporal.flag:7233",
			"--task-queue", "flag-queue",
			"--top-sign-method", "hmac",
			"--top-qps", "0",
			"--http-addr", "127.0.0.1:0",
			"--retry-budget", "1h",
			"--log-format", "text",
			"--no-worker",
		}, e)
		if err != nil {
			t.Fatalf("parseConfig: %v", err)
		}
		if cfg.TemporalAddress != "temporal.flag:7233" || cfg.TaskQueue != "flag-queue" || cfg.HTTPAddr != "127.0.0.1:0" ||
			cfg.Settings.RetryBudget != time.Hour || cfg.LogFormat != "text" || cfg.WorkerEnabled || !cfg.IngressEnabled {
			t.Errorf("config=%+v, want the flags' values and the worker off", cfg)
		}
		if cfg.TemporalNamespace != "insurance" || cfg.Settings.IdleTimeout != 240*time.Hour {
			t.Errorf("namespace=%q idle=%v: options without a flag must keep the environment's values", cfg.TemporalNamespace, cfg.Settings.IdleTimeout)
		}
	})
	t.Run("disabling by environment", func(t *testing.T) {
		cfg, err := parse(t, nil, with(minimal(), "INGRESS_ENABLED", "false", "INGRESS_TOKENS", ""))
		if err != nil {
			t.Fatalf("parseConfig: %v", err)
		}
		if cfg.IngressEnabled || !cfg.WorkerEnabled {
			t.Fatalf("ingress=%v worker=%v, want false true", cfg.IngressEnabled, cfg.WorkerEnabled)
		}
	})
	t.Run("ingress only needs no TOP credentials", func(t *testing.T) {
		cfg, err := parse(t, []string{"--no-worker"}, map[string]string{"INGRESS_TOKENS": ingressToken})
		if err != nil {
			t.Fatalf("parseConfig: %v", err)
		}
		if cfg.WorkerEnabled || !cfg.TOPAppSecret.IsZero() {
			t.Fatalf("config=%+v, want the worker off and no secret", cfg)
		}
	})
}

func TestConfigSecretFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatalf("write %s: %v", p, err)
		}
		return p
	}
	base := with(minimal(), "TOP_APP_SECRET", "")
	tests := []struct {
		name    string
		content string
		want    string
	}{
		{"trailing newline", "file-secret\n", "file-secret"},
		{"windows newline", "file-secret\r\n", "file-secret"},
		{"no newline", "file-secret", "file-secret"},
		{"inner spaces kept", " spaced secret \n", " spaced secret "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := write(strings.ReplaceAll(tt.name, " ", "-"), tt.content)
			cfg, err := parse(t, nil, with(base, "TOP_APP_SECRET_FILE", path))
			if err != nil {
				t.Fatalf("parseConfig: %v", err)
			}
			if cfg.TOPAppSecret.Reveal() != tt.want {
				t.Fatalf("secret=%q, want %q", cfg.TOPAppSecret.Reveal(), tt.want)
			}
		})
	}
	t.Run("flag names the file", func(t *testing.T) {
		cfg, err := parse(t, []string{"--top-app-secret-file", write("flagged", "from-flag\n")}, base)
		if err != nil || cfg.TOPAppSecret.Reveal() != "from-flag" {
			t.Fatalf("secret=%q err=%v, want from-flag", cfg.TOPAppSecret.Reveal(), err)
		}
	})
	t.Run("empty file", func(t *testing.T) {
		_, err := parse(t, nil, with(base, "TOP_APP_SECRET_FILE", write("empty", "\n")))
		wantConfigError(t, err, "TOP_APP_SECRET_FILE", "is empty")
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := parse(t, nil, with(base, "TOP_APP_SECRET_FILE", filepath.Join(dir, "nope")))
		wantConfigError(t, err, "TOP_APP_SECRET_FILE", "cannot read the secret")
	})
	t.Run("both secret and file", func(t *testing.T) {
		_, err := parse(t, nil, with(minimal(), "TOP_APP_SECRET_FILE", write("both", "x")))
		wantConfigError(t, err, "TOP_APP_SECRET", "not both")
	})
}

// wantConfigError checks that err holds a *ConfigError naming name whose
// problem contains problem.
func wantConfigError(t *testing.T, err error, name, problem string) {
	t.Helper()
	if err == nil {
		t.Fatalf("err=nil, want a %s error", name)
	}
	var found []string
	for _, e := range flatten(err) {
		var cerr *ConfigError
		if errors.As(e, &cerr) {
			if cerr.Name == name && strings.Contains(cerr.Problem, problem) {
				if !strings.Contains(err.Error(), name+": ") {
					t.Fatalf("error text %q does not name %s", err, name)
				}
				return
			}
			found = append(found, cerr.Error())
		}
	}
	t.Fatalf("err=%v, want a ConfigError for %s containing %q (found %q)", err, name, problem, found)
}

func flatten(err error) []error {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range joined.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

func TestConfigBadValues(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		env         map[string]string
		wantName    string
		wantProblem string
	}{
		{"bad duration", nil, with(minimal(), "RETRY_BUDGET", "a day"), "RETRY_BUDGET", `"a day" is not a duration`},
		{"negative duration", nil, with(minimal(), "IDLE_TIMEOUT", "-1h"), "IDLE_TIMEOUT", "negative"},
		{"bad duration by flag", []string{"--retry-initial-interval", "soon"}, minimal(), "--retry-initial-interval", "is not a duration"},
		{"max below initial", nil, with(minimal(), "RETRY_INITIAL_INTERVAL", "10m", "RETRY_MAX_INTERVAL", "1m"), "RETRY_MAX_INTERVAL", "below retry_initial_interval"},
		{"bad sign method", nil, with(minimal(), "TOP_SIGN_METHOD", "sha1"), "TOP_SIGN_METHOD", `"sha1" is not md5, hmac or hmac-sha256`},
		{"bad qps", nil, with(minimal(), "TOP_QPS", "fast"), "TOP_QPS", "not a non-negative whole number"},
		{"negative qps", nil, with(minimal(), "TOP_QPS", "-1"), "TOP_QPS", "not a non-negative whole number"},
		{"fractional qps", nil, with(minimal(), "TOP_QPS", "2.5"), "TOP_QPS", "not a non-negative whole number"},
		{"margin of a second", nil, with(minimal(), "TOP_QPS_MARGIN", "1s"), "TOP_QPS_MARGIN", "under 1s"},
		{"bad gateway scheme", nil, with(minimal(), "TOP_GATEWAY_URL", "ftp://gw/router"), "TOP_GATEWAY_URL", "scheme must be http or https"},
		{"bad http addr", nil, with(minimal(), "HTTP_ADDR", "8080"), "HTTP_ADDR", "is not host:port"},
		{"bad boolean", nil, with(minimal(), "WORKER_ENABLED", "maybe"), "WORKER_ENABLED", "is not a boolean"},
		{"bad log level", nil, with(minimal(), "LOG_LEVEL", "loud"), "LOG_LEVEL", "is not a level"},
		{"bad log format", nil, with(minimal(), "LOG_FORMAT", "xml"), "LOG_FORMAT", "is not text or json"},
		{"bad temporal call timeout", nil, with(minimal(), "TEMPORAL_CALL_TIMEOUT", "20"), "TEMPORAL_CALL_TIMEOUT", `"20" is not a positive duration`},
		{"bad future skew", nil, with(minimal(), "MAX_FUTURE_SKEW", "soon"), "MAX_FUTURE_SKEW", `"soon" is not a positive duration`},
		{"zero future skew", nil, with(minimal(), "MAX_FUTURE_SKEW", "0s"), "MAX_FUTURE_SKEW", "is not a positive duration"},
		{"bad future skew by flag", []string{"--max-future-skew", "-1m"}, minimal(), "--max-future-skew", "is not a positive duration"},
		{"no app key", nil, with(minimal(), "TOP_APP_KEY", ""), "TOP_APP_KEY", "is required"},
		{"no app secret", nil, with(minimal(), "TOP_APP_SECRET", ""), "TOP_APP_SECRET", "is required"},
		{"no tokens", nil, with(minimal(), "INGRESS_TOKENS", " , "), "INGRESS_CLIENTS_FILE", "at least one caller is required"},
		{"nothing to run", []string{"--no-worker", "--no-ingress"}, minimal(), "INGRESS_ENABLED/WORKER_ENABLED", "nothing to run"},
		{"stray argument", []string{"serve"}, minimal(), "arguments", `unexpected "serve"`},
		{"notify url without secret", nil, with(minimal(), "NOTIFY_URL", "http://claims.example/hooks"), "NOTIFY_SECRET", "is required when NOTIFY_URL is set"},
		{"notify secret not whsec", nil, with(minimal(), "NOTIFY_URL", "http://claims.example/hooks", "NOTIFY_SECRET", "hunter2hunter2"), "NOTIFY_SECRET", "does not start with whsec_"},
		{"notify secret too short", nil, with(minimal(), "NOTIFY_URL", "http://claims.example/hooks", "NOTIFY_SECRET", "whsec_c2hvcnQ="), "NOTIFY_SECRET", "decodes to 5 bytes"},
		{"notify url scheme", nil, with(minimal(), "NOTIFY_URL", "ftp://claims.example/hooks", "NOTIFY_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), "NOTIFY_URL", "scheme must be http or https"},
		{"bad notify budget", nil, with(minimal(), "NOTIFY_RETRY_BUDGET", "a week"), "NOTIFY_RETRY_BUDGET", `"a week" is not a duration`},
		{"bad sweep interval", nil, with(minimal(), "SWEEP_INTERVAL", "hourly"), "SWEEP_INTERVAL", `"hourly" is not a duration (e.g. 1m), or 0 for no sweeper`},
		{"negative sweep interval", []string{"--sweep-interval", "-1m"}, minimal(), "--sweep-interval", "is not a duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, tt.args, tt.env)
			wantConfigError(t, err, tt.wantName, tt.wantProblem)
		})
	}
	t.Run("sweep interval", func(t *testing.T) {
		for in, want := range map[string]time.Duration{"0": 0, "0s": 0, "30s": 30 * time.Second} {
			c, err := parse(t, nil, with(minimal(), "SWEEP_INTERVAL", in))
			if err != nil || c.SweepInterval != want {
				t.Fatalf("SWEEP_INTERVAL=%s: %v, %v; want %v", in, c.SweepInterval, err, want)
			}
		}
	})
	t.Run("notify secret never in the error", func(t *testing.T) {
		_, err := parse(t, nil, with(minimal(), "NOTIFY_URL", "http://claims.example/hooks", "NOTIFY_SECRET", "hunter2hunter2"))
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Fatalf("err = %v, want one that does not show the secret", err)
		}
	})
	t.Run("notify settings", func(t *testing.T) {
		c, err := parse(t, nil, with(minimal(), "NOTIFY_URL", "http://claims.example/hooks",
			"NOTIFY_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "NOTIFY_RETRY_BUDGET", "2h"))
		if err != nil {
			t.Fatal(err)
		}
		if c.NotifyURL != "http://claims.example/hooks" || c.NotifySecret.IsZero() || !c.Settings.Notify || c.Settings.NotifyRetryBudget != 2*time.Hour {
			t.Fatalf("config = url %q secret set %v settings %+v", c.NotifyURL, !c.NotifySecret.IsZero(), c.Settings)
		}
		// An ingress-only process starts notifying runs without the secret.
		c, err = parse(t, []string{"--no-worker"}, with(minimal(), "NOTIFY_URL", "http://claims.example/hooks"))
		if err != nil || !c.Settings.Notify || !c.NotifySecret.IsZero() {
			t.Fatalf("ingress only: notify=%v secret set=%v err=%v, want notify without a secret", c.Settings.Notify, !c.NotifySecret.IsZero(), err)
		}
		c, err = parse(t, nil, minimal())
		if err != nil || c.Settings.Notify || c.NotifyURL != "" {
			t.Fatalf("without NOTIFY_URL: notify=%v url=%q err=%v, want off", c.Settings.Notify, c.NotifyURL, err)
		}
	})
	t.Run("every problem at once", func(t *testing.T) {
		_, err := parse(t, nil, with(minimal(), "RETRY_BUDGET", "x", "LOG_FORMAT", "xml", "TOP_QPS", "y"))
		wantConfigError(t, err, "RETRY_BUDGET", "not a duration")
		wantConfigError(t, err, "LOG_FORMAT", "not text or json")
		wantConfigError(t, err, "TOP_QPS", "non-negative")
	})
	t.Run("unknown flag", func(t *testing.T) {
		if _, err := parse(t, []string{"--colour"}, minimal()); err == nil || !strings.Contains(err.Error(), "colour") {
			t.Fatalf("err=%v, want it to name the flag", err)
		}
	})
	t.Run("help", func(t *testing.T) {
		var usage bytes.Buffer
		_, err := parseConfig([]string{"-h"}, env(minimal()), &usage)
		if !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("err=%v, want flag.ErrHelp", err)
		}
		for _, want := range []string{"TEMPORAL_ADDRESS", "--no-ingress", "RETRY_BUDGET", "INGRESS_TOKENS"} {
			if !strings.Contains(usage.String(), strings.TrimPrefix(want, "--")) {
				t.Errorf("usage does not mention %s:\n%s", want, usage.String())
			}
		}
	})
}

func TestConfigWorkflowCacheSize(t *testing.T) {
	valid := []struct {
		name string
		args []string
		env  map[string]string
		want int
	}{
		{"default", nil, minimal(), 2000},
		{"environment", nil, with(minimal(), "WORKFLOW_CACHE_SIZE", "500"), 500},
		{"flag wins over the environment", []string{"--workflow-cache-size", "750"}, with(minimal(), "WORKFLOW_CACHE_SIZE", "500"), 750},
		{"smallest", nil, with(minimal(), "WORKFLOW_CACHE_SIZE", "1"), 1},
		{"surrounding spaces", nil, with(minimal(), "WORKFLOW_CACHE_SIZE", " 300 "), 300},
		{"read without the ingress", []string{"--no-ingress"}, with(minimal(), "WORKFLOW_CACHE_SIZE", "64"), 64},
	}
	for _, tt := range valid {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parse(t, tt.args, tt.env)
			if err != nil {
				t.Fatalf("parseConfig: %v", err)
			}
			if cfg.WorkflowCacheSize != tt.want {
				t.Fatalf("workflow cache size=%d, want %d", cfg.WorkflowCacheSize, tt.want)
			}
		})
	}

	invalid := []struct {
		name, value string
		byFlag      bool
		wantName    string
	}{
		{"zero", "0", false, "WORKFLOW_CACHE_SIZE"},
		{"negative", "-5", false, "WORKFLOW_CACHE_SIZE"},
		{"not a number", "lots", false, "WORKFLOW_CACHE_SIZE"},
		{"fraction", "2.5", false, "WORKFLOW_CACHE_SIZE"},
		{"with a unit", "2k", false, "WORKFLOW_CACHE_SIZE"},
		{"zero by flag", "0", true, "--workflow-cache-size"},
	}
	for _, tt := range invalid {
		t.Run("invalid/"+tt.name, func(t *testing.T) {
			e, args := minimal(), []string(nil)
			if tt.byFlag {
				args = []string{"--workflow-cache-size", tt.value}
			} else {
				e = with(e, "WORKFLOW_CACHE_SIZE", tt.value)
			}
			_, err := parse(t, args, e)
			wantConfigError(t, err, tt.wantName, fmt.Sprintf("%q is not a whole number of at least 1", tt.value))
		})
	}

	t.Run("logged and in the usage", func(t *testing.T) {
		cfg, err := parse(t, nil, with(minimal(), "WORKFLOW_CACHE_SIZE", "321"))
		if err != nil {
			t.Fatalf("parseConfig: %v", err)
		}
		var out bytes.Buffer
		newLogger(cfg, &out).Info("starting", "config", cfg)
		if !strings.Contains(out.String(), "workflow_cache_size=321") {
			t.Errorf("logged config lacks workflow_cache_size=321: %s", out.String())
		}
		var usage bytes.Buffer
		if _, err := parseConfig([]string{"-h"}, env(minimal()), &usage); !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("err=%v, want flag.ErrHelp", err)
		}
		for _, want := range []string{"-workflow-cache-size", "env WORKFLOW_CACHE_SIZE, default 2000"} {
			if !strings.Contains(usage.String(), want) {
				t.Errorf("usage lacks %q:\n%s", want, usage.String())
			}
		}
	})
}

func TestConfigLogNeverShowsSecrets(t *testing.T) {
	e := with(minimal(),
		"TOP_SESSION", sessionKey,
		"DATABASE_URL", "postgres://insurer:db-password-000@db:5432/flow",
		"TOP_GATEWAY_URL", "https://user:gw-password-111@gw.example/router/rest",
	)
	// The postgres scheme is not supported by the store yet, but the
	// configuration is read before the store is opened.
	cfg, err := parse(t, nil, e)
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var out bytes.Buffer
			c := cfg
			c.LogFormat = format
			newLogger(c, &out).Info("starting", "config", c)
			logged := out.String()
			for _, secret := range []string{appSecret, sessionKey, ingressToken, "db-password-000", "gw-password-111"} {
				if strings.Contains(logged, secret) {
					t.Errorf("logged config contains %q: %s", secret, logged)
				}
			}
			for _, want := range []string{"top_app_secret_set", "top_session_set", "ingress_tokens", "12345678", "db:5432"} {
				if !strings.Contains(logged, want) {
					t.Errorf("logged config lacks %q: %s", want, logged)
				}
			}
		})
	}
	t.Run("fmt", func(t *testing.T) {
		for _, s := range []string{fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg)} {
			for _, secret := range []string{appSecret, sessionKey, ingressToken} {
				if strings.Contains(s, secret) {
					t.Errorf("formatted config contains %q", secret)
				}
			}
		}
	})
	t.Run("errors", func(t *testing.T) {
		_, err := parse(t, nil, with(e, "RETRY_BUDGET", "x", "TOP_QPS", "y"))
		for _, secret := range []string{appSecret, sessionKey, ingressToken} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("config error contains %q: %v", secret, err)
			}
		}
	})
}

func TestTOPTimeouts(t *testing.T) {
	base := map[string]string{"TOP_APP_KEY": "k", "TOP_APP_SECRET": "s", "INGRESS_TOKENS": "t"}
	t.Run("set", func(t *testing.T) {
		env := map[string]string{"TOP_CALL_TIMEOUT": "2s", "TOP_CONNECT_TIMEOUT": "500ms"}
		for k, v := range base {
			env[k] = v
		}
		c, err := parseConfig(nil, func(k string) string { return env[k] }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if c.TOPCallTimeout != 2*time.Second || c.TOPConnectTimeout != 500*time.Millisecond {
			t.Fatalf("timeouts = %s, %s; want 2s, 500ms", c.TOPCallTimeout, c.TOPConnectTimeout)
		}
	})
	t.Run("bad", func(t *testing.T) {
		env := map[string]string{"TOP_CALL_TIMEOUT": "soon"}
		for k, v := range base {
			env[k] = v
		}
		_, err := parseConfig(nil, func(k string) string { return env[k] }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "TOP_CALL_TIMEOUT") {
			t.Fatalf("err = %v, want one naming TOP_CALL_TIMEOUT", err)
		}
	})
}

// payloadKeyFile writes a payload key file of lines and returns its path.
func payloadKeyFile(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "payload-keys")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const (
	newKeyB64  = "bmV3LWtleS1tYXRlcmlhbC0zMi1ieXRlcy1sb25nISE=" // 32 bytes
	oldKeyB64  = "b2xkLWtleS1tYXRlcmlhbC0zMi1ieXRlcy1sb25nISE=" // 32 bytes
	codecToken = "codec-token-value-321"
)

func TestConfigPayloadEncryption(t *testing.T) {
	keys := payloadKeyFile(t, "# rotated 2025-06", "new:"+newKeyB64, "old:"+oldKeyB64)
	t.Run("off without a key file", func(t *testing.T) {
		cfg, err := parse(t, nil, with(minimal(), "CODEC_AUTH_TOKENS", codecToken, "CODEC_CORS_ORIGINS", "*"))
		if err != nil {
			t.Fatalf("parseConfig: %v", err)
		}
		if cfg.Codec != nil || cfg.CodecCORSOrigins != nil || cfg.CodecAuthTokens != nil {
			t.Fatalf("codec settings %v %v %d tokens, want none without PAYLOAD_KEYS_FILE", cfg.Codec, cfg.CodecCORSOrigins, len(cfg.CodecAuthTokens))
		}
		if cfg.dataConverter() != nil || cfg.failureConverter() != nil {
			t.Fatalf("converters set without a key file; want the SDK's defaults")
		}
	})
	t.Run("environment", func(t *testing.T) {
		cfg, err := parse(t, nil, with(minimal(), "PAYLOAD_KEYS_FILE", keys, "CODEC_AUTH_TOKENS", " "+codecToken+" ,, second"))
		if err != nil {
			t.Fatalf("parseConfig: %v", err)
		}
		if cfg.Codec == nil || cfg.Codec.EncryptionKeyID() != "new" || strings.Join(cfg.Codec.KeyIDs(), ",") != "new,old" {
			t.Fatalf("codec=%v, want encryption with new, decryption with new,old", cfg.Codec)
		}
		if got := strings.Join(cfg.CodecCORSOrigins, ","); got != "http://localhost:8233,http://127.0.0.1:8233" {
			t.Fatalf("origins=%s, want the dev UI's", got)
		}
		if got := strings.Join(cfg.codecTokens(), ","); got != codecToken+",second" {
			t.Fatalf("tokens=%q, want %s,second", got, codecToken)
		}
		p, err := cfg.dataConverter().ToPayload("王小丫")
		if err != nil || string(p.Metadata["encryption-key-id"]) != "new" {
			t.Fatalf("data converter payload=%v err=%v, want one encrypted with key new", p, err)
		}
	})
	t.Run("flags", func(t *testing.T) {
		cfg, err := parse(t, []string{"--payload-keys-file", keys, "--codec-cors-origins", "https://temporal.example.com"}, minimal())
		if err != nil {
			t.Fatalf("parseConfig: %v", err)
		}
		if cfg.PayloadKeysFile != keys || strings.Join(cfg.CodecCORSOrigins, ",") != "https://temporal.example.com" {
			t.Fatalf("keys file %s origins %v, want the flags' values", cfg.PayloadKeysFile, cfg.CodecCORSOrigins)
		}
	})
	t.Run("worker only ignores the endpoint's settings", func(t *testing.T) {
		cfg, err := parse(t, []string{"--no-ingress"}, with(minimal(), "PAYLOAD_KEYS_FILE", keys, "CODEC_CORS_ORIGINS", "*"))
		if err != nil {
			t.Fatalf("parseConfig: %v", err)
		}
		if cfg.Codec == nil || cfg.CodecCORSOrigins != nil {
			t.Fatalf("codec=%v origins=%v, want the codec and no origins", cfg.Codec, cfg.CodecCORSOrigins)
		}
	})
	t.Run("bad key file", func(t *testing.T) {
		bad := payloadKeyFile(t, "new:"+newKeyB64, oldKeyB64)
		_, err := parse(t, nil, with(minimal(), "PAYLOAD_KEYS_FILE", bad))
		wantConfigError(t, err, "PAYLOAD_KEYS_FILE", "line 2: want key-id:base64-key, found no colon")
		for _, secret := range []string{newKeyB64, oldKeyB64} {
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("the error quotes key material: %v", err)
			}
		}
	})
	t.Run("missing key file", func(t *testing.T) {
		_, err := parse(t, nil, with(minimal(), "PAYLOAD_KEYS_FILE", filepath.Join(t.TempDir(), "absent")))
		wantConfigError(t, err, "PAYLOAD_KEYS_FILE", "no such file")
	})
	t.Run("bad origins", func(t *testing.T) {
		_, err := parse(t, []string{"--codec-cors-origins", "*"}, with(minimal(), "PAYLOAD_KEYS_FILE", keys))
		wantConfigError(t, err, "--codec-cors-origins", `"*" is not allowed`)
	})
	t.Run("log shows key ids, not keys or tokens", func(t *testing.T) {
		cfg, err := parse(t, nil, with(minimal(), "PAYLOAD_KEYS_FILE", keys, "CODEC_AUTH_TOKENS", codecToken))
		if err != nil {
			t.Fatalf("parseConfig: %v", err)
		}
		var out bytes.Buffer
		cfg.LogFormat = "json"
		newLogger(cfg, &out).Info("starting", "config", cfg)
		logged := out.String() + fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg)
		for _, secret := range []string{newKeyB64, oldKeyB64, codecToken, "new-key-material"} {
			if strings.Contains(logged, secret) {
				t.Fatalf("logged config contains %q: %s", secret, logged)
			}
		}
		for _, want := range []string{`"encryption_key_id":"new"`, `"key_ids":"new,old"`, `"codec_auth_tokens":1`} {
			if !strings.Contains(logged, want) {
				t.Fatalf("logged config lacks %s: %s", want, logged)
			}
		}
	})
}

func TestConfigClientsFileAndSecretFileWarnings(t *testing.T) {
	dir := t.TempDir()
	clients := filepath.Join(dir, "clients")
	if err := os.WriteFile(clients, []byte("claims:report:claims-token-0123456789\nops-bob:read,operate:ops-token-0123456789\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "top_app_secret")
	if err := os.WriteFile(secret, []byte(appSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(secret, 0o644); err != nil {
		t.Fatal(err)
	}
	e := with(minimal(), "INGRESS_TOKENS", "", "INGRESS_CLIENTS_FILE", clients, "TOP_APP_SECRET", "", "TOP_APP_SECRET_FILE", secret)
	cfg, err := parse(t, nil, e)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.clientNames(), ","); got != "claims,ops-bob" {
		t.Fatalf("clients=%s, want claims,ops-bob", got)
	}
	if c, ok := cfg.IngressClients.Authenticate("ops-token-0123456789"); !ok || c.Name != "ops-bob" {
		t.Fatalf("ops token authenticates as %v %v", c, ok)
	}
	if cfg.TOPAppSecret.Reveal() != appSecret {
		t.Fatal("TOP secret not read from its file")
	}
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], "TOP_APP_SECRET_FILE: secret file "+secret+" is readable by its group or others") {
		t.Fatalf("warnings=%q, want one naming %s", cfg.Warnings, secret)
	}

	if err := os.WriteFile(clients, []byte("claims:report,admin:claims-token-0123456789\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	_, err = parse(t, nil, e)
	if err == nil || !strings.Contains(err.Error(), "INGRESS_CLIENTS_FILE: "+clients+` line 1: unknown scope "admin"`) || strings.Contains(err.Error(), "claims-token") {
		t.Fatalf("err=%v, want the file and line, never the token", err)
	}
}

func TestConfigTemporalMutualTLSAndStopTimeout(t *testing.T) {
	f, err := tlscerts.Generate(t.TempDir(), "temporal", "insuranceflow", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := parse(t, []string{"--tls-cert-path", f.ClientCert, "--tls-server-name", "temporal"}, with(minimal(),
		"TEMPORAL_ADDRESS", "temporal.prod:7233",
		"TEMPORAL_TLS_CLIENT_KEY_PATH", f.ClientKey,
		"TEMPORAL_TLS_SERVER_CA_CERT_PATH", f.CACert,
		"TOP_CALL_TIMEOUT", "50s"))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Temporal.ClientCert() || cfg.Temporal.Options.ConnectionOptions.TLS.ServerName != "temporal" || cfg.TemporalAddress != "temporal.prod:7233" {
		t.Fatalf("temporal=%v address=%s, want mutual TLS to temporal.prod", cfg.Temporal, cfg.TemporalAddress)
	}
	if cfg.WorkerStopTimeout != time.Minute {
		t.Fatalf("stop timeout=%v, want the TOP call timeout + 10s = 1m", cfg.WorkerStopTimeout)
	}
	cfg, err = parse(t, nil, with(minimal(), "WORKER_STOP_TIMEOUT", "2m"))
	if err != nil || cfg.WorkerStopTimeout != 2*time.Minute {
		t.Fatalf("WORKER_STOP_TIMEOUT=2m: %v %v", cfg.WorkerStopTimeout, err)
	}
	_, err = parse(t, nil, with(minimal(), "TEMPORAL_TLS_CLIENT_CERT_PATH", f.ClientCert))
	var cerr *ConfigError
	if !errors.As(err, &cerr) || !strings.Contains(err.Error(), "TLS") {
		t.Fatalf("a certificate without its key: err=%v, want a ConfigError about TLS", err)
	}
}

// TestDatabaseURLPasswordNeverOnTheCommandLine checks where a database
// password may come from: never a flag (refused, pointing at the
// environment and the file, without repeating the password), the
// environment or DATABASE_URL_FILE; and that the start-up log masks every
// form of it.
func TestDatabaseURLPasswordNeverOnTheCommandLine(t *testing.T) {
	const password = "db-pass-word-42"
	for _, url := range []string{
		"postgres://insurer:" + password + "@db:5432/flow",
		"postgres://insurer@db:5432/flow?password=" + password,
		"postgres://insurer@db:5432/flow?sslmode=verify-full&sslpassword=" + password,
	} {
		t.Run("flag refused "+url[strings.Index(url, "@"):], func(t *testing.T) {
			_, err := parse(t, []string{"--database-url", url}, minimal())
			wantConfigError(t, err, "--database-url", "carries a password")
			for _, want := range []string{"DATABASE_URL", "DATABASE_URL_FILE"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not point at %s", err, want)
				}
			}
			if strings.Contains(err.Error(), password) {
				t.Fatalf("error repeats the password: %v", err)
			}
		})
		t.Run("environment accepted and logged masked "+url[strings.Index(url, "@"):], func(t *testing.T) {
			cfg, err := parse(t, nil, with(minimal(), "DATABASE_URL", url))
			if err != nil || cfg.DatabaseURL != url {
				t.Fatalf("DatabaseURL=%q err=%v, want %q", cfg.DatabaseURL, err, url)
			}
			var out bytes.Buffer
			newLogger(cfg, &out).Info("starting", "config", cfg)
			if strings.Contains(out.String(), password) || !strings.Contains(out.String(), "xxxxx") {
				t.Fatalf("logged config does not mask the password: %s", out.String())
			}
		})
	}
	t.Run("flag without a password accepted", func(t *testing.T) {
		cfg, err := parse(t, []string{"--database-url", "postgres://insurer@db/flow?sslmode=verify-full"}, minimal())
		if err != nil || cfg.DatabaseURL != "postgres://insurer@db/flow?sslmode=verify-full" {
			t.Fatalf("DatabaseURL=%q err=%v", cfg.DatabaseURL, err)
		}
	})

	dir := t.TempDir()
	file := filepath.Join(dir, "database-url")
	url := "postgres://insurer:" + password + "@db:5432/flow"
	if err := os.WriteFile(file, []byte(url+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	t.Run("DATABASE_URL_FILE", func(t *testing.T) {
		cfg, err := parse(t, nil, with(minimal(), "DATABASE_URL_FILE", file))
		if err != nil || cfg.DatabaseURL != url || len(cfg.Warnings) != 0 {
			t.Fatalf("DatabaseURL=%q warnings=%v err=%v, want %q and no warning", cfg.DatabaseURL, cfg.Warnings, err, url)
		}
	})
	t.Run("--database-url-file", func(t *testing.T) {
		cfg, err := parse(t, []string{"--database-url-file", file}, minimal())
		if err != nil || cfg.DatabaseURL != url {
			t.Fatalf("DatabaseURL=%q err=%v, want %q", cfg.DatabaseURL, err, url)
		}
	})
	t.Run("both DATABASE_URL and its file", func(t *testing.T) {
		_, err := parse(t, nil, with(minimal(), "DATABASE_URL", "sqlite://x.db", "DATABASE_URL_FILE", file))
		wantConfigError(t, err, "DATABASE_URL", "not both")
	})
	t.Run("readable by others is a warning naming the file", func(t *testing.T) {
		open := filepath.Join(dir, "open-url")
		if err := os.WriteFile(open, []byte(url), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := parse(t, nil, with(minimal(), "DATABASE_URL_FILE", open))
		if err != nil || len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], "DATABASE_URL_FILE: secret file "+open) ||
			strings.Contains(cfg.Warnings[0], password) {
			t.Fatalf("warnings=%v err=%v, want one naming %s", cfg.Warnings, err, open)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := parse(t, nil, with(minimal(), "DATABASE_URL_FILE", filepath.Join(dir, "absent")))
		wantConfigError(t, err, "DATABASE_URL_FILE", "cannot read the secret")
	})
}

func TestConfigMaxFutureSkew(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		want time.Duration
	}{
		{"default", nil, minimal(), 10 * time.Minute},
		{"environment", nil, with(minimal(), "MAX_FUTURE_SKEW", "30m"), 30 * time.Minute},
		{"flag wins", []string{"--max-future-skew", "2m"}, with(minimal(), "MAX_FUTURE_SKEW", "30m"), 2 * time.Minute},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parse(t, tt.args, tt.env)
			if err != nil {
				t.Fatalf("parseConfig: %v", err)
			}
			if cfg.MaxFutureSkew != tt.want {
				t.Fatalf("MaxFutureSkew=%s, want %s", cfg.MaxFutureSkew, tt.want)
			}
		})
	}
}

func TestConfigTemporalCallTimeout(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		want time.Duration
	}{
		{"default", nil, minimal(), 5 * time.Second},
		{"environment", nil, with(minimal(), "TEMPORAL_CALL_TIMEOUT", "3s"), 3 * time.Second},
		{"flag wins", []string{"--temporal-call-timeout", "8s"}, with(minimal(), "TEMPORAL_CALL_TIMEOUT", "3s"), 8 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parse(t, tt.args, tt.env)
			if err != nil {
				t.Fatalf("parseConfig: %v", err)
			}
			if cfg.TemporalCallTimeout != tt.want {
				t.Fatalf("TemporalCallTimeout=%s, want %s", cfg.TemporalCallTimeout, tt.want)
			}
		})
	}
}

// TestConfigGRPCCompression: TEMPORAL_GRPC_COMPRESSION (or its flag)
// reaches the Temporal client's options; the default is the SDK's gzip, and
// a value that is neither is refused naming the variable.
func TestConfigGRPCCompression(t *testing.T) {
	cfg, err := parse(t, nil, minimal())
	if err != nil || cfg.Temporal.Compression() != temporalconn.CompressionGzip {
		t.Fatalf("default: compression=%q err=%v, want gzip", cfg.Temporal.Compression(), err)
	}
	cfg, err = parse(t, nil, with(minimal(), "TEMPORAL_GRPC_COMPRESSION", "none"))
	if err != nil || cfg.Temporal.Compression() != temporalconn.CompressionNone {
		t.Fatalf("TEMPORAL_GRPC_COMPRESSION=none: compression=%q err=%v", cfg.Temporal.Compression(), err)
	}
	cfg, err = parse(t, []string{"--grpc-compression", "none"}, minimal())
	if err != nil || cfg.Temporal.Compression() != temporalconn.CompressionNone {
		t.Fatalf("--grpc-compression none: compression=%q err=%v", cfg.Temporal.Compression(), err)
	}
	_, err = parse(t, nil, with(minimal(), "TEMPORAL_GRPC_COMPRESSION", "brotli"))
	var cerr *ConfigError
	if !errors.As(err, &cerr) || cerr.Name != "TEMPORAL_GRPC_COMPRESSION" {
		t.Fatalf("TEMPORAL_GRPC_COMPRESSION=brotli: err=%v, want a ConfigError naming the variable", err)
	}
}
