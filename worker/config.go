package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/converter"

	"github.com/insuranceflow/insuranceflow/activities"
	"github.com/insuranceflow/insuranceflow/auth"
	"github.com/insuranceflow/insuranceflow/codec"
	"github.com/insuranceflow/insuranceflow/ingress"
	"github.com/insuranceflow/insuranceflow/metrics"
	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/secretfile"
	"github.com/insuranceflow/insuranceflow/store"
	"github.com/insuranceflow/insuranceflow/temporalconn"
	"github.com/insuranceflow/insuranceflow/top"
	"github.com/insuranceflow/insuranceflow/webhook"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// config is everything the worker reads from its flags and environment,
// read once at start.
type config struct {
	// Temporal is the connection as the SDK's environment configuration
	// loaded it (profile, TEMPORAL_* variables, then flags);
	// TemporalAddress and TemporalNamespace are its address and namespace.
	Temporal          temporalconn.Conn
	TemporalAddress   string
	TemporalNamespace string
	TaskQueue         string
	DatabaseURL       string

	// WorkerStopTimeout is how long a stopping worker lets running
	// activities finish: longer than a TOP call, so a deploy does not cut
	// a callback and leave it to a heartbeat timeout.
	WorkerStopTimeout time.Duration

	TOPGatewayURL     string
	TOPAppKey         string
	TOPAppSecret      top.Secret
	TOPSignMethod     top.SignMethod
	TOPSession        top.Secret
	TOPQPS            int           // TOP calls in any sliding second, across every worker sharing the store; 0 = no limit
	TOPQPSMargin      time.Duration // added to the second the limit is counted in (activities.CallLimiter)
	TOPCallTimeout    time.Duration // one whole TOP call; 0 = the client's default (30s)
	TOPConnectTimeout time.Duration // establishing the connection; 0 = the client's default (15s)

	HTTPAddr      string
	IngressTokens []top.Secret
	// IngressClients are the named callers with scopes of
	// INGRESS_CLIENTS_FILE; nil without it.
	IngressClients *auth.Clients

	// Warnings are problems worth a log line that do not stop the start,
	// e.g. a secret file others can read.
	Warnings []string
	// TemporalCallTimeout bounds each call the ingress makes to Temporal.
	TemporalCallTimeout time.Duration
	// MaxFutureSkew is how far ahead of this host's clock an event's
	// time_of_occurrence may be before the ingress refuses it.
	MaxFutureSkew time.Duration

	IngressEnabled bool
	WorkerEnabled  bool

	Settings workflows.Settings

	// WorkflowCacheSize is how many workflows the worker keeps in memory
	// between their workflow tasks (the SDK's sticky cache).
	WorkflowCacheSize int

	// Payload encryption, off (Codec nil) without PAYLOAD_KEYS_FILE. The
	// CORS origins and tokens are those of the ingress's codec endpoint.
	PayloadKeysFile  string
	Codec            *codec.Codec
	CodecCORSOrigins []string
	CodecAuthTokens  []top.Secret
	// CodecAddr is where the codec endpoint listens: its own host:port
	// (CODEC_ADDR, loopback by default) or, when CodecOnIngress, the
	// ingress's listener. Beyond loopback it requires CodecAuthTokens.
	CodecAddr      string
	CodecOnIngress bool
	// RequireEncryption refuses plaintext payloads (a key file is needed).
	RequireEncryption bool

	// The TOP-compatible endpoint's inbound credentials; both empty: off.
	IngressTOPAppKey    string
	IngressTOPAppSecret top.Secret

	// Notifications to the business system, off when NotifyURL is empty;
	// NotifySecret signs them (worker process only, never in history).
	NotifyURL    string
	NotifySecret webhook.Secret

	// Prometheus metrics, off when MetricsAddr is empty.
	MetricsAddr           string
	MetricsParkedInterval time.Duration

	// SweepInterval is the time between the sweeper's looks for policies
	// whose run was cancelled or terminated; 0 turns the sweeper off.
	SweepInterval time.Duration

	LogLevel  slog.Level
	LogFormat string // text or json
}

// ConfigError names the flag or environment variable whose value is unusable.
type ConfigError struct {
	Name    string // "RETRY_BUDGET", or "--retry-budget" when the flag gave the value
	Problem string
}

func (e *ConfigError) Error() string { return e.Name + ": " + e.Problem }

// option is one setting: its flag, its environment variable and its
// default. Secrets have no flag, because command lines are visible to every
// user of the host (ps, /proc); they come from the environment or a file.
type option struct {
	flag, env, def, help string
	secret               bool
}

func options() []option {
	return []option{
		// The Temporal connection: the names the Temporal CLI uses for its
		// flags and environment, read by the SDK's envconfig (temporalconn).
		{flag: "address", env: temporalconn.EnvAddress, help: "Temporal frontend host:port (default " + temporalconn.DefaultAddress + ", or the profile's)"},
		{flag: "namespace", env: temporalconn.EnvNamespace, help: "Temporal namespace (default " + temporalconn.DefaultNamespace + ", or the profile's)"},
		{env: temporalconn.EnvAPIKey, secret: true},
		{env: temporalconn.EnvTLS},
		{flag: "tls-cert-path", env: temporalconn.EnvTLSCertPath, help: "client certificate for mutual TLS to Temporal"},
		{flag: "tls-key-path", env: temporalconn.EnvTLSKeyPath, help: "client certificate's private key"},
		{flag: "tls-ca-path", env: temporalconn.EnvTLSCAPath, help: "CA certificate that signed the Temporal frontend's (default: the system's)"},
		{flag: "tls-server-name", env: temporalconn.EnvTLSServerName, help: "name the Temporal frontend's certificate must carry"},
		{flag: "profile", env: temporalconn.EnvProfile, help: "temporal.toml profile (default \"default\")"},
		{flag: "config-file", env: temporalconn.EnvConfigFile, help: "temporal.toml with the profiles (default: the Temporal CLI's)"},
		{flag: "grpc-compression", env: temporalconn.EnvGRPCCompression, help: "gzip (default) or none: none saves CPU when Temporal is on the same machine or LAN"},
		{flag: "worker-stop-timeout", env: "WORKER_STOP_TIMEOUT", help: "how long a stopping worker lets running TOP calls finish (default: the TOP call timeout + 10s)"},
		{flag: "task-queue", env: "TASK_QUEUE", def: workflows.DefaultTaskQueue, help: "task queue of the policy workflows"},
		{flag: "database-url", env: "DATABASE_URL", def: "sqlite://.data/insuranceflow.db", help: "audit trail database, without a password (a URL with one belongs in env DATABASE_URL or DATABASE_URL_FILE)"},
		{flag: "database-url-file", env: "DATABASE_URL_FILE", help: "file holding the database URL, with its password (or set DATABASE_URL)"},
		{flag: "top-gateway-url", env: "TOP_GATEWAY_URL", def: "http://127.0.0.1:8788/router/rest", help: "TOP gateway URL"},
		{flag: "top-app-key", env: "TOP_APP_KEY", help: "TOP app_key (required with the worker)"},
		{env: "TOP_APP_SECRET", secret: true},
		{flag: "top-app-secret-file", env: "TOP_APP_SECRET_FILE", help: "file holding the TOP app secret (or set TOP_APP_SECRET)"},
		{flag: "top-sign-method", env: "TOP_SIGN_METHOD", def: string(top.DefaultSignMethod), help: "md5, hmac or hmac-sha256"},
		{env: "TOP_SESSION", secret: true},
		{flag: "top-call-timeout", env: "TOP_CALL_TIMEOUT", help: "bound on one whole TOP call (default 30s)"},
		{flag: "top-connect-timeout", env: "TOP_CONNECT_TIMEOUT", help: "bound on connecting to the TOP gateway (default 15s)"},
		{flag: "top-qps", env: "TOP_QPS", def: "0", help: "most TOP calls in any sliding second, across every worker sharing the database; 0 = no limit"},
		{flag: "top-qps-margin", env: "TOP_QPS_MARGIN", def: activities.DefaultQPSMargin.String(), help: "added to the second TOP_QPS is counted in, for network jitter"},
		{flag: "http-addr", env: "HTTP_ADDR", def: "127.0.0.1:8080", help: "ingress listen address (port 0 picks a free one)"},
		{env: "INGRESS_TOKENS", secret: true},
		{flag: "ingress-clients-file", env: "INGRESS_CLIENTS_FILE", help: "callers of the ingress, one name:scopes:token per line (scopes: report, read, operate; token may be sha256:<hex>)"},
		{flag: "temporal-call-timeout", env: "TEMPORAL_CALL_TIMEOUT", def: ingress.DefaultCallTimeout.String(), help: "bound on each call the ingress makes to Temporal; past it the caller gets 503"},
		{flag: "max-future-skew", env: policyclient.EnvMaxFutureSkew, help: "how far ahead of this host's clock an event's time_of_occurrence may be (default 10m)"},
		{flag: "ingress-top-app-key", env: "INGRESS_TOP_APP_KEY", help: "app_key that callers of the TOP-compatible POST /router/rest sign with, with INGRESS_TOP_APP_SECRET (unset: the endpoint is off)"},
		{env: "INGRESS_TOP_APP_SECRET", secret: true},
		{flag: "ingress-top-app-secret-file", env: "INGRESS_TOP_APP_SECRET_FILE", help: "file holding the /router/rest app secret (or set INGRESS_TOP_APP_SECRET)"},
		{flag: "notify-url", env: "NOTIFY_URL", help: "where to POST signed notifications of callback outcomes (unset: none); needs NOTIFY_SECRET or NOTIFY_SECRET_FILE"},
		{env: "NOTIFY_SECRET", secret: true},
		{flag: "notify-secret-file", env: "NOTIFY_SECRET_FILE", help: "file holding the whsec_ secret notifications are signed with (or set NOTIFY_SECRET)"},
		{flag: "notify-retry-budget", env: "NOTIFY_RETRY_BUDGET", help: "how long a notification is retried before it is recorded as lost (default 24h)"},
		{flag: "metrics-addr", env: "METRICS_ADDR", help: "Prometheus /metrics listen address, e.g. 127.0.0.1:9090 (unset: no metrics)"},
		{flag: "metrics-parked-interval", env: "METRICS_PARKED_INTERVAL", help: "how often the parked callbacks gauge is recounted (default 30s)"},
		{env: "INGRESS_ENABLED", def: "true"},
		{env: "WORKER_ENABLED", def: "true"},
		{flag: "retry-initial-interval", env: "RETRY_INITIAL_INTERVAL", help: "first callback retry delay (default 1s)"},
		{flag: "retry-max-interval", env: "RETRY_MAX_INTERVAL", help: "longest callback retry delay (default 5m)"},
		{flag: "retry-budget", env: "RETRY_BUDGET", help: "how long a callback is retried before it is parked (default 24h)"},
		{flag: "idle-timeout", env: "IDLE_TIMEOUT", help: "how long a quiet policy workflow stays open (default 720h)"},
		{flag: "retry-backoff", env: "RETRY_BACKOFF", help: "factor between callback retry delays (default 2)"},
		{flag: "empty-run-grace", env: "EMPTY_RUN_GRACE", help: "how long a run that accepted nothing stays open (default 1m)"},
		{flag: "sweep-interval", env: "SWEEP_INTERVAL", def: workflows.DefaultSweepInterval.String(), help: "how often the sweeper gives a policy whose run was cancelled or terminated a new run that delivers what it held; 0 = no sweeper"},
		{flag: "continue-as-new-after", env: "CONTINUE_AS_NEW_AFTER", help: "accepted events per run before continue-as-new (default 500)"},
		{flag: "pipeline-delivery", env: "PIPELINE_DELIVERY", help: "schedule a callback while the one ahead is in flight, to wait in the worker for its turn (default true; taken by runs started from then on)"},
		{flag: "workflow-cache-size", env: "WORKFLOW_CACHE_SIZE", def: strconv.Itoa(defaultWorkflowCacheSize), help: "policy workflows kept in the worker's memory between events; the rest are replayed from history on their next event"},
		{flag: "payload-keys-file", env: "PAYLOAD_KEYS_FILE", help: "payload encryption keys, one key-id:base64-key per line, the first encrypts; also serves /codec for the Temporal UI (unset: no encryption)"},
		{flag: "codec-cors-origins", env: "CODEC_CORS_ORIGINS", def: strings.Join(codec.DefaultCORSOrigins, ","), help: "Temporal UI origins allowed to call /codec, comma-separated"},
		{env: "CODEC_AUTH_TOKENS", secret: true},
		{flag: "codec-auth-tokens-file", env: "CODEC_AUTH_TOKENS_FILE", help: "file with the codec endpoint's bearer tokens, one per line (or set CODEC_AUTH_TOKENS)"},
		{flag: "codec-addr", env: "CODEC_ADDR", def: defaultCodecAddr, help: "where the codec endpoint for the Temporal UI listens: host:port, or \"ingress\" for the ingress's listener; beyond loopback it needs CODEC_AUTH_TOKENS"},
		{flag: "payload-require-encryption", env: "PAYLOAD_REQUIRE_ENCRYPTION", def: "false", help: "refuse unencrypted payloads (needs PAYLOAD_KEYS_FILE)"},
		{flag: "log-level", env: "LOG_LEVEL", def: "info", help: "debug, info, warn or error"},
		{flag: "log-format", env: "LOG_FORMAT", def: "text", help: "text or json"},
	}
}

// values resolves each option: the flag when given, else the environment
// variable when set, else the default. It remembers which one spoke, so an
// error names what the operator actually wrote.
type values struct {
	val  map[string]string // by env name
	name map[string]string // by env name: "--flag" or "ENV"
	// warnings collects what secretFile finds worth a warning.
	warnings *[]string
	// set says which options were given by a flag or the environment
	// rather than defaulted, by env name.
	set map[string]bool
}

func (v values) get(env string) string { return v.val[env] }

func (v values) bad(env, format string, args ...any) error {
	return &ConfigError{Name: v.name[env], Problem: fmt.Sprintf(format, args...)}
}

// parseConfig reads the command line and the environment. It returns
// flag.ErrHelp after printing usage for -h.
func parseConfig(args []string, getenv func(string) string, usage io.Writer) (config, error) {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(usage)
	flags := map[string]*string{}
	for _, o := range options() {
		if o.flag == "" {
			continue
		}
		note := "env " + o.env
		if o.def != "" {
			note += ", default " + o.def
		}
		flags[o.env] = fs.String(o.flag, "", fmt.Sprintf("%s (%s)", o.help, note))
	}
	noIngress := fs.Bool("no-ingress", false, "do not serve the HTTP ingress (env INGRESS_ENABLED=false)")
	noWorker := fs.Bool("no-worker", false, "do not run the Temporal worker (env WORKER_ENABLED=false)")
	fs.Usage = func() {
		fmt.Fprintln(usage, "Usage: worker [flags]")
		fmt.Fprintln(usage, "Runs the policy workflow worker and the HTTP ingress.")
		fmt.Fprintln(usage, "Secrets come from the environment only: DATABASE_URL with a password (or DATABASE_URL_FILE), TOP_APP_SECRET (or TOP_APP_SECRET_FILE), TOP_SESSION, INGRESS_TOKENS and CODEC_AUTH_TOKENS (comma-separated), INGRESS_TOP_APP_SECRET (or INGRESS_TOP_APP_SECRET_FILE), NOTIFY_SECRET (or NOTIFY_SECRET_FILE).")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, &ConfigError{Name: "arguments", Problem: fmt.Sprintf("unexpected %q (the worker takes flags only)", fs.Arg(0))}
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })

	v := values{val: map[string]string{}, name: map[string]string{}, warnings: &[]string{}, set: map[string]bool{}}
	for _, o := range options() {
		v.val[o.env], v.name[o.env] = o.def, o.env
		if env := getenv(o.env); env != "" {
			v.val[o.env], v.set[o.env] = env, true
		}
		if o.flag != "" && given[o.flag] {
			v.val[o.env], v.name[o.env], v.set[o.env] = *flags[o.env], "--"+o.flag, true
		}
	}
	if given["no-ingress"] {
		v.val["INGRESS_ENABLED"], v.name["INGRESS_ENABLED"] = strconv.FormatBool(!*noIngress), "--no-ingress"
	}
	if given["no-worker"] {
		v.val["WORKER_ENABLED"], v.name["WORKER_ENABLED"] = strconv.FormatBool(!*noWorker), "--no-worker"
	}
	return v.config()
}

// config turns the resolved strings into a config, checking every value.
func (v values) config() (config, error) {
	c := config{
		TaskQueue:     v.get("TASK_QUEUE"),
		TOPGatewayURL: v.get("TOP_GATEWAY_URL"),
		TOPAppKey:     strings.TrimSpace(v.get("TOP_APP_KEY")),
		TOPSession:    top.Secret(v.get("TOP_SESSION")),
		HTTPAddr:      v.get("HTTP_ADDR"),
		LogFormat:     v.get("LOG_FORMAT"),
	}
	var err error
	var errs []error
	check := func(e error) {
		if e != nil {
			errs = append(errs, e)
		}
	}
	check(v.temporalSettings(&c))
	// The ingress listens there, or, worker only, the probes do.
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		check(v.bad("HTTP_ADDR", "%q is not host:port (e.g. 127.0.0.1:8080, or :0 for a free port)", c.HTTPAddr))
	}
	if strings.TrimSpace(c.TaskQueue) == "" {
		check(v.bad("TASK_QUEUE", "must not be empty"))
	}
	check(v.databaseURL(&c))
	if c.IngressEnabled, err = strconv.ParseBool(v.get("INGRESS_ENABLED")); err != nil {
		check(v.bad("INGRESS_ENABLED", "%q is not a boolean (true or false)", v.get("INGRESS_ENABLED")))
	}
	if c.WorkerEnabled, err = strconv.ParseBool(v.get("WORKER_ENABLED")); err != nil {
		check(v.bad("WORKER_ENABLED", "%q is not a boolean (true or false)", v.get("WORKER_ENABLED")))
	}
	if len(errs) == 0 && !c.IngressEnabled && !c.WorkerEnabled {
		check(&ConfigError{Name: "INGRESS_ENABLED/WORKER_ENABLED", Problem: "both the ingress and the worker are disabled; nothing to run"})
	}

	if c.WorkerEnabled {
		check(v.topSettings(&c))
		check(v.stopTimeout(&c))
	}
	if c.IngressEnabled {
		check(v.ingressSettings(&c))
		check(v.ingressTOPSettings(&c))
	}
	check(v.workflowSettings(&c))
	check(v.notifySettings(&c))
	check(v.workflowCacheSize(&c))
	check(v.sweepInterval(&c))
	check(v.metricsSettings(&c))
	check(v.codecSettings(&c))

	if err := c.LogLevel.UnmarshalText([]byte(v.get("LOG_LEVEL"))); err != nil {
		check(v.bad("LOG_LEVEL", "%q is not a level (debug, info, warn or error)", v.get("LOG_LEVEL")))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		check(v.bad("LOG_FORMAT", "%q is not text or json", c.LogFormat))
	}
	if len(errs) > 0 {
		return config{}, errors.Join(errs...)
	}
	c.Warnings = *v.warnings
	return c, nil
}

// secretFile reads a secret file named by fileEnv, noting a warning when
// others can read it.
func (v values) secretFile(fileEnv string) (string, error) {
	value, warn, err := secretfile.Read(v.get(fileEnv))
	if err != nil {
		return "", v.bad(fileEnv, "cannot read the secret: %v", err)
	}
	if warn != nil {
		*v.warnings = append(*v.warnings, v.name[fileEnv]+": "+warn.Error())
	}
	return value, nil
}

// databaseURL reads the store's URL from DATABASE_URL, its flag, or
// DATABASE_URL_FILE. A URL with a password is refused on the command line,
// which every user of the host can read (ps, /proc): it belongs in the
// environment or, better, a file only the service's user can read.
func (v values) databaseURL(c *config) error {
	file := v.get("DATABASE_URL_FILE")
	switch {
	case file != "" && v.set["DATABASE_URL"]:
		return &ConfigError{Name: v.name["DATABASE_URL"], Problem: "set it or " + v.name["DATABASE_URL_FILE"] + ", not both"}
	case file != "":
		u, err := v.secretFile("DATABASE_URL_FILE")
		if err != nil {
			return err
		}
		c.DatabaseURL = strings.TrimSpace(u)
		return nil
	}
	c.DatabaseURL = v.get("DATABASE_URL")
	if strings.TrimSpace(c.DatabaseURL) == "" {
		return v.bad("DATABASE_URL", "must not be empty")
	}
	if strings.HasPrefix(v.name["DATABASE_URL"], "--") && store.URLHasPassword(c.DatabaseURL) {
		// The message never repeats the URL: it holds the password.
		return v.bad("DATABASE_URL", "carries a password, and a command line is visible to every user of the host; "+
			"put the URL in the environment (DATABASE_URL) or in a file only the service can read (DATABASE_URL_FILE)")
	}
	return nil
}

// temporalSettings loads the Temporal connection with the SDK's
// environment configuration, from the resolved values so a flag wins over
// its variable, and the variable over the profile.
func (v values) temporalSettings(c *config) error {
	conn, err := temporalconn.Load(temporalconn.Func(v.get), temporalconn.Overrides{})
	if err != nil {
		var terr *temporalconn.Error
		if errors.As(err, &terr) {
			return &ConfigError{Name: terr.Setting, Problem: strings.TrimPrefix(err.Error(), terr.Setting+": ")}
		}
		return err
	}
	c.Temporal = conn
	c.TemporalAddress = conn.Options.HostPort
	c.TemporalNamespace = conn.Options.Namespace
	return nil
}

// defaultTOPCallTimeout is the TOP client's own bound on a call, which the
// default stop timeout must exceed.
const defaultTOPCallTimeout = 30 * time.Second

// stopTimeout reads WORKER_STOP_TIMEOUT; by default a running TOP call
// gets its whole timeout and 10 s to record its attempt.
func (v values) stopTimeout(c *config) error {
	call := c.TOPCallTimeout
	if call == 0 {
		call = defaultTOPCallTimeout
	}
	c.WorkerStopTimeout = call + 10*time.Second
	s := v.get("WORKER_STOP_TIMEOUT")
	if s == "" {
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return v.bad("WORKER_STOP_TIMEOUT", "%q is not a positive duration (e.g. 45s)", s)
	}
	c.WorkerStopTimeout = d
	return nil
}

// topSettings reads what the worker needs to call TOP.
func (v values) topSettings(c *config) error {
	var errs []error
	u, err := url.Parse(c.TOPGatewayURL)
	switch {
	case err != nil:
		// url's error would repeat the URL, which may hold a password.
		errs = append(errs, v.bad("TOP_GATEWAY_URL", "is not a valid URL"))
	case u.Scheme != "http" && u.Scheme != "https":
		errs = append(errs, v.bad("TOP_GATEWAY_URL", "scheme must be http or https, got %q", u.Scheme))
	case u.Host == "":
		errs = append(errs, v.bad("TOP_GATEWAY_URL", "has no host"))
	}
	if c.TOPAppKey == "" {
		errs = append(errs, v.bad("TOP_APP_KEY", "is required to run the worker (or pass --no-worker)"))
	}
	m, err := top.ParseSignMethod(v.get("TOP_SIGN_METHOD"))
	if err != nil {
		errs = append(errs, v.bad("TOP_SIGN_METHOD", "%q is not md5, hmac or hmac-sha256", v.get("TOP_SIGN_METHOD")))
	}
	c.TOPSignMethod = m

	secret, err := v.secret("TOP_APP_SECRET", "TOP_APP_SECRET_FILE")
	switch {
	case err != nil:
		errs = append(errs, err)
	case secret.IsZero():
		errs = append(errs, &ConfigError{Name: "TOP_APP_SECRET", Problem: "is required to run the worker (or set TOP_APP_SECRET_FILE, or pass --no-worker)"})
	}
	c.TOPAppSecret = secret

	// A whole number: TOP grants calls per second, and a sliding window
	// counts whole calls.
	qps, err := strconv.Atoi(v.get("TOP_QPS"))
	if err != nil || qps < 0 {
		errs = append(errs, v.bad("TOP_QPS", "%q is not a non-negative whole number of calls per second", v.get("TOP_QPS")))
	}
	c.TOPQPS = qps
	margin, err := time.ParseDuration(v.get("TOP_QPS_MARGIN"))
	if err != nil || margin < 0 || margin >= time.Second {
		errs = append(errs, v.bad("TOP_QPS_MARGIN", "%q is not a duration from 0 to under 1s (e.g. 50ms)", v.get("TOP_QPS_MARGIN")))
	}
	c.TOPQPSMargin = margin
	for _, d := range []struct {
		env string
		dst *time.Duration
	}{{"TOP_CALL_TIMEOUT", &c.TOPCallTimeout}, {"TOP_CONNECT_TIMEOUT", &c.TOPConnectTimeout}} {
		s := v.get(d.env)
		if s == "" {
			continue // the client's default
		}
		t, err := time.ParseDuration(s)
		if err != nil || t <= 0 {
			errs = append(errs, v.bad(d.env, "%q is not a positive duration (e.g. 10s)", s))
			continue
		}
		*d.dst = t
	}
	return errors.Join(errs...)
}

// ingressSettings reads what the HTTP ingress needs.
func (v values) ingressSettings(c *config) error {
	var errs []error
	for _, t := range strings.Split(v.get("INGRESS_TOKENS"), ",") {
		if t = strings.TrimSpace(t); t != "" {
			c.IngressTokens = append(c.IngressTokens, top.Secret(t))
		}
	}
	if v.get("INGRESS_CLIENTS_FILE") != "" {
		content, err := v.secretFile("INGRESS_CLIENTS_FILE")
		if err == nil {
			// auth's errors name the file and line, never a token.
			c.IngressClients, err = auth.ParseClients(strings.NewReader(content), v.get("INGRESS_CLIENTS_FILE"))
			if err != nil {
				err = v.bad("INGRESS_CLIENTS_FILE", "%v", err)
			}
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(c.IngressTokens) == 0 && (c.IngressClients == nil || c.IngressClients.Len() == 0) {
		errs = append(errs, &ConfigError{Name: "INGRESS_CLIENTS_FILE", Problem: "at least one caller is required to serve the ingress: list callers in INGRESS_CLIENTS_FILE (or, for development, tokens in INGRESS_TOKENS), or pass --no-ingress"})
	}
	if d, err := time.ParseDuration(v.get("TEMPORAL_CALL_TIMEOUT")); err != nil || d <= 0 {
		errs = append(errs, v.bad("TEMPORAL_CALL_TIMEOUT", "%q is not a positive duration (e.g. 5s)", v.get("TEMPORAL_CALL_TIMEOUT")))
	} else {
		c.TemporalCallTimeout = d
	}
	// The same parser as the starter's, so both refuse the same events.
	skew, err := policyclient.MaxFutureSkewFromEnv(v.get)
	var argErr *policyclient.ArgumentError
	if errors.As(err, &argErr) {
		errs = append(errs, v.bad(policyclient.EnvMaxFutureSkew, "%s", argErr.Message))
	}
	c.MaxFutureSkew = skew
	return errors.Join(errs...)
}

// notifySettings reads where notifications go and the secret they are
// signed with. Errors name the variable, never the secret's value.
func (v values) notifySettings(c *config) error {
	c.NotifyURL = strings.TrimSpace(v.get("NOTIFY_URL"))
	if c.NotifyURL == "" {
		if v.get("NOTIFY_SECRET") != "" || v.get("NOTIFY_SECRET_FILE") != "" {
			*v.warnings = append(*v.warnings, "NOTIFY_SECRET is set but NOTIFY_URL is not: no notifications are sent")
		}
		return nil
	}
	u, err := url.Parse(c.NotifyURL)
	switch {
	case err != nil:
		return v.bad("NOTIFY_URL", "is not a valid URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return v.bad("NOTIFY_URL", "scheme must be http or https, got %q", u.Scheme)
	case u.Host == "":
		return v.bad("NOTIFY_URL", "has no host")
	}
	if !c.WorkerEnabled {
		// An ingress-only process needs the URL (runs it starts notify),
		// not the secret: only workers sign.
		return nil
	}
	secret, warn, err := webhook.ReadSecret(v.name["NOTIFY_SECRET"], v.get("NOTIFY_SECRET"), v.name["NOTIFY_SECRET_FILE"], v.get("NOTIFY_SECRET_FILE"))
	if err != nil {
		var se *webhook.SourceError
		if errors.As(err, &se) {
			problem := se.Err.Error()
			if errors.Is(err, webhook.ErrNoSecret) {
				problem = "is required when NOTIFY_URL is set (or set NOTIFY_SECRET_FILE); the form is whsec_ + base64 of 24 to 64 random bytes"
			}
			return &ConfigError{Name: se.Name, Problem: problem}
		}
		return err
	}
	if warn != nil {
		*v.warnings = append(*v.warnings, v.name["NOTIFY_SECRET_FILE"]+": "+warn.Error())
	}
	c.NotifySecret = secret
	return nil
}

// workflowSettings reads the durations that tune every policy workflow.
func (v values) workflowSettings(c *config) error {
	// One parser for the worker, the ingress and the CLI, so a workflow
	// started from any of them runs with the same settings.
	settings, err := workflows.SettingsFromEnv(v.get)
	if err == nil {
		c.Settings = settings
		return nil
	}
	errs := []error{err}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		errs = joined.Unwrap()
	}
	for i, e := range errs {
		var envErr *workflows.EnvError
		if errors.As(e, &envErr) {
			if _, known := v.name[envErr.Variable]; known {
				errs[i] = v.bad(envErr.Variable, "%s", envErr.Problem) // names the flag when a flag gave it
			}
		}
	}
	return errors.Join(errs...)
}

// defaultWorkflowCacheSize replaces the SDK's default of 10,000. Each policy
// is an entity workflow that stays open between its events, so most open
// workflows are idle; a cache as large as the SDK's keeps up to 10,000 of
// them in memory and the worker's RSS grows with the number of open
// policies. An evicted policy costs a replay of its short history on its
// next event, which is cheap next to holding it for days.
const defaultWorkflowCacheSize = 2000

// workflowCacheSize reads the size of the worker's sticky workflow cache.
func (v values) workflowCacheSize(c *config) error {
	s := v.get("WORKFLOW_CACHE_SIZE")
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 {
		return v.bad("WORKFLOW_CACHE_SIZE", "%q is not a whole number of at least 1", s)
	}
	c.WorkflowCacheSize = n
	return nil
}

// sweepInterval reads SWEEP_INTERVAL: a duration, 0 for no sweeper.
func (v values) sweepInterval(c *config) error {
	s := strings.TrimSpace(v.get("SWEEP_INTERVAL"))
	d, err := time.ParseDuration(s)
	if s == "0" {
		d, err = 0, nil
	}
	if err != nil || d < 0 {
		return v.bad("SWEEP_INTERVAL", "%q is not a duration (e.g. 1m), or 0 for no sweeper", s)
	}
	c.SweepInterval = d
	return nil
}

// codecSettings reads the payload encryption keys and, when the ingress
// serves the codec endpoint, who may call it. Without a key file
// encryption is off and the codec settings are not read.
func (v values) codecSettings(c *config) error {
	c.PayloadKeysFile = v.get("PAYLOAD_KEYS_FILE")
	require, err := strconv.ParseBool(v.get("PAYLOAD_REQUIRE_ENCRYPTION"))
	if err != nil {
		return v.bad("PAYLOAD_REQUIRE_ENCRYPTION", "%q is not a boolean (true or false)", v.get("PAYLOAD_REQUIRE_ENCRYPTION"))
	}
	c.RequireEncryption = require
	if c.PayloadKeysFile == "" {
		if require {
			return v.bad("PAYLOAD_REQUIRE_ENCRYPTION", "needs PAYLOAD_KEYS_FILE: there is nothing to encrypt with")
		}
		return nil
	}
	var errs []error
	if w := secretfile.CheckMode(c.PayloadKeysFile); w != nil {
		*v.warnings = append(*v.warnings, v.name["PAYLOAD_KEYS_FILE"]+": "+w.Error())
	}
	pc, err := codec.LoadKeyFile(c.PayloadKeysFile)
	if err != nil {
		// codec's errors name the file and line, never key material.
		errs = append(errs, v.bad("PAYLOAD_KEYS_FILE", "%v", err))
	}
	c.Codec = pc
	if !c.IngressEnabled {
		return errors.Join(errs...)
	}
	origins, err := codec.ParseOrigins(v.get("CODEC_CORS_ORIGINS"))
	if err != nil {
		var cerr *codec.ConfigError
		if errors.As(err, &cerr) {
			err = errors.New(cerr.Problem)
		}
		errs = append(errs, v.bad("CODEC_CORS_ORIGINS", "%v", err))
	}
	c.CodecCORSOrigins = origins
	tokens, err := v.secret("CODEC_AUTH_TOKENS", "CODEC_AUTH_TOKENS_FILE")
	if err != nil {
		errs = append(errs, err)
	}
	// Commas in the variable, lines (or commas) in the file.
	for _, t := range strings.FieldsFunc(tokens.Reveal(), func(r rune) bool { return r == ',' || r == '\n' || r == '\r' }) {
		if t = strings.TrimSpace(t); t != "" && !strings.HasPrefix(t, "#") {
			c.CodecAuthTokens = append(c.CodecAuthTokens, top.Secret(t))
		}
	}
	errs = append(errs, v.codecListener(c))
	return errors.Join(errs...)
}

// defaultCodecAddr keeps the codec endpoint on loopback unless told
// otherwise: it decrypts whatever it is sent.
const defaultCodecAddr = "127.0.0.1:8089"

// codecListener decides where the codec endpoint listens and refuses to
// start one that anyone beyond this host could call without a token: it
// would be a decryption oracle for every payload in the namespace.
func (v values) codecListener(c *config) error {
	addr := strings.TrimSpace(v.get("CODEC_ADDR"))
	if addr == "ingress" {
		c.CodecOnIngress = true
		if len(c.CodecAuthTokens) == 0 {
			return v.bad("CODEC_ADDR", "the codec endpoint on the ingress's listener needs CODEC_AUTH_TOKENS (or CODEC_AUTH_TOKENS_FILE): callers of the ingress must not decrypt payloads")
		}
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return v.bad("CODEC_ADDR", "%q is not host:port or \"ingress\"", addr)
	}
	c.CodecAddr = addr
	if !isLoopback(host) && len(c.CodecAuthTokens) == 0 {
		return v.bad("CODEC_ADDR", "%s is reachable beyond this host: set CODEC_AUTH_TOKENS (or CODEC_AUTH_TOKENS_FILE), or listen on 127.0.0.1", addr)
	}
	return nil
}

// isLoopback reports whether host names only this machine. An empty host
// or 0.0.0.0 listens on every interface.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// LogValue is the configuration as logged at start: the values the
// process runs with, defaults applied (a zero duration in the config means
// "the default", which is not what an operator reading the log needs to
// know); secrets reduced to whether they are set; URLs without passwords.
func (c config) LogValue() slog.Value {
	// The same WithDefaults every run applies to the settings it is given.
	settings := c.Settings.WithDefaults()
	attrs := []slog.Attr{
		slog.Any("temporal", c.Temporal),
		slog.String("task_queue", c.TaskQueue),
		slog.String("database_url", store.RedactURL(c.DatabaseURL)),
		slog.Bool("worker", c.WorkerEnabled),
		slog.Bool("ingress", c.IngressEnabled),
		slog.String("top_gateway_url", redactURL(c.TOPGatewayURL)),
		slog.String("top_app_key", c.TOPAppKey),
		slog.Bool("top_app_secret_set", !c.TOPAppSecret.IsZero()),
		slog.String("top_sign_method", string(c.TOPSignMethod)),
		slog.Bool("top_session_set", !c.TOPSession.IsZero()),
		slog.Int("top_qps", c.TOPQPS),
		slog.Duration("top_qps_margin", c.TOPQPSMargin),
		slog.Duration("top_call_timeout", orDefault(c.TOPCallTimeout, top.DefaultCallTimeout)),
		slog.Duration("top_connect_timeout", orDefault(c.TOPConnectTimeout, top.DefaultConnectTimeout)),
		slog.String("http_addr", c.HTTPAddr),
		slog.Int("ingress_tokens", len(c.IngressTokens)),
		slog.Any("ingress_clients", c.clientNames()),
		slog.String("ingress_top_app_key", c.IngressTOPAppKey),
		slog.Bool("ingress_top_app_secret_set", !c.IngressTOPAppSecret.IsZero()),
		slog.String("metrics_addr", c.MetricsAddr),
	}
	// Settings of a part that is off are not shown: they have no value.
	if c.IngressEnabled {
		attrs = append(attrs, slog.Duration("temporal_call_timeout", c.TemporalCallTimeout),
			slog.Duration("max_future_skew", c.MaxFutureSkew))
	}
	if c.MetricsAddr != "" {
		attrs = append(attrs, slog.Duration("metrics_parked_interval", c.MetricsParkedInterval))
	}
	attrs = append(attrs,
		slog.Duration("retry_initial_interval", settings.RetryInitialInterval),
		slog.Float64("retry_backoff", settings.RetryBackoff),
		slog.Duration("retry_max_interval", settings.RetryMaxInterval),
		slog.Duration("retry_budget", settings.RetryBudget),
		slog.Duration("idle_timeout", settings.IdleTimeout),
		slog.Duration("empty_run_grace", settings.EmptyRunGrace),
		slog.Int("continue_as_new_after", settings.ContinueAsNewAfter),
		slog.Int("workflow_cache_size", c.WorkflowCacheSize),
		slog.Duration("sweep_interval", c.SweepInterval),
		slog.Duration("worker_stop_timeout", c.WorkerStopTimeout),
		slog.String("log_level", c.LogLevel.String()),
		slog.String("log_format", c.LogFormat),
		slog.Any("payload_encryption", c.Codec),
		slog.String("codec_cors_origins", strings.Join(c.CodecCORSOrigins, ",")),
		slog.Int("codec_auth_tokens", len(c.CodecAuthTokens)),
		slog.String("codec_addr", c.codecWhere()),
		slog.Bool("payload_require_encryption", c.RequireEncryption),
	)
	return slog.GroupValue(attrs...)
}

// orDefault is d, or def when d is zero (unset).
func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// redactURL drops the password from the TOP gateway's URL for logging; a
// URL that does not parse is not shown at all, since it might be one with a
// password. (A database URL has more places for a password: see
// store.RedactURL.)
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "[unparseable]"
	}
	return u.Redacted()
}

// clientNames are the callers of INGRESS_CLIENTS_FILE, for the start-up
// log line: names, never tokens.
func (c config) clientNames() []string {
	if c.IngressClients == nil {
		return nil
	}
	return c.IngressClients.Names()
}

// tokens reveals the ingress tokens for the ingress, which compares them.
func (c config) tokens() []string {
	out := make([]string, len(c.IngressTokens))
	for i, t := range c.IngressTokens {
		out[i] = t.Reveal()
	}
	return out
}

// codecTokens reveals the codec endpoint's tokens for the codec server,
// which compares them.
func (c config) codecTokens() []string {
	out := make([]string, len(c.CodecAuthTokens))
	for i, t := range c.CodecAuthTokens {
		out[i] = t.Reveal()
	}
	return out
}

// dataConverter and failureConverter encrypt payloads and failure messages
// when a key file is configured; nil (the SDK's defaults) otherwise.
func (c config) dataConverter() converter.DataConverter {
	if c.Codec == nil {
		return nil
	}
	return c.clientCodec().DataConverter()
}

func (c config) failureConverter() converter.FailureConverter {
	if c.Codec == nil {
		return nil
	}
	return c.clientCodec().FailureConverter()
}

// clientCodec is the codec of the worker's Temporal client: strict with
// PAYLOAD_REQUIRE_ENCRYPTION. The UI's codec endpoint keeps the lenient
// one, to show histories from before encryption was required.
func (c config) clientCodec() *codec.Codec {
	if c.RequireEncryption {
		return c.Codec.RequireEncryption()
	}
	return c.Codec
}

// codecWhere is where the codec endpoint listens, for the log.
func (c config) codecWhere() string {
	switch {
	case c.Codec == nil || !c.IngressEnabled:
		return "off"
	case c.CodecOnIngress:
		return "ingress"
	}
	return c.CodecAddr
}

// ingressTOPSettings reads the credentials of the TOP-compatible endpoint.
// Both unset turns it off; one without the other is a mistake, since the
// operator meant to turn it on.
func (v values) ingressTOPSettings(c *config) error {
	c.IngressTOPAppKey = strings.TrimSpace(v.get("INGRESS_TOP_APP_KEY"))
	secret, err := v.secret("INGRESS_TOP_APP_SECRET", "INGRESS_TOP_APP_SECRET_FILE")
	if err != nil {
		return err
	}
	c.IngressTOPAppSecret = secret
	switch {
	case c.IngressTOPAppKey == "" && !secret.IsZero():
		return v.bad("INGRESS_TOP_APP_KEY", "is required when INGRESS_TOP_APP_SECRET is set (or unset both to turn /router/rest off)")
	case c.IngressTOPAppKey != "" && secret.IsZero():
		return &ConfigError{Name: "INGRESS_TOP_APP_SECRET", Problem: "is required when INGRESS_TOP_APP_KEY is set (or set INGRESS_TOP_APP_SECRET_FILE)"}
	}
	return nil
}

// secret reads a secret from its variable or from the file its _FILE
// variable names, never both. An unset secret is "".
func (v values) secret(env, fileEnv string) (top.Secret, error) {
	value, file := v.get(env), v.get(fileEnv)
	switch {
	case value != "" && file != "":
		return "", &ConfigError{Name: env, Problem: "set it or " + v.name[fileEnv] + ", not both"}
	case file == "":
		return top.Secret(value), nil
	}
	value, err := v.secretFile(fileEnv)
	if err != nil {
		return "", err
	}
	return top.Secret(value), nil
}

// metricsSettings reads where Prometheus metrics are served, if anywhere.
func (v values) metricsSettings(c *config) error {
	c.MetricsAddr = strings.TrimSpace(v.get("METRICS_ADDR"))
	if c.MetricsAddr == "" {
		return nil
	}
	var errs []error
	if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
		errs = append(errs, v.bad("METRICS_ADDR", "%q is not host:port (e.g. 127.0.0.1:9090)", c.MetricsAddr))
	}
	c.MetricsParkedInterval = metrics.DefaultParkedInterval
	if s := v.get("METRICS_PARKED_INTERVAL"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			errs = append(errs, v.bad("METRICS_PARKED_INTERVAL", "%q is not a positive duration (e.g. 30s)", s))
		} else {
			c.MetricsParkedInterval = d
		}
	}
	return errors.Join(errs...)
}
