package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/secretfile"
	"github.com/insuranceflow/insuranceflow/store"
	"github.com/insuranceflow/insuranceflow/temporalconn"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// policyOps is what the CLI does to policies through Temporal.
type policyOps interface {
	Report(ctx context.Context, r insurance.Result) (workflows.Acceptance, error)
	Status(ctx context.Context, bizID string) (workflows.Status, error)
	List(ctx context.Context, f policyclient.ListFilter) (policyclient.ListPage, error)
	Retry(ctx context.Context, bizID string, req workflows.OperatorRequest) (workflows.OperatorResult, error)
	Skip(ctx context.Context, bizID string, req workflows.OperatorRequest) (workflows.OperatorResult, error)
}

// historyReader is what the CLI reads from the store.
type historyReader interface {
	Policy(ctx context.Context, bizID string) (store.Policy, error)
	Events(ctx context.Context, bizID string) ([]store.Event, error)
	Attempts(ctx context.Context, bizID string) ([]store.Attempt, error)
	OperatorActions(ctx context.Context, bizID string) ([]store.OperatorAction, error)
	LostNotifications(ctx context.Context, bizID string) ([]store.LostNotification, error)
}

var (
	_ policyOps     = (*policyclient.Client)(nil)
	_ historyReader = (*store.Store)(nil)
)

// backends connects to Temporal and the database. Connections are made
// only when a command asks for them, after the global flags are parsed, so
// `history` works with Temporal down and `list` with no database.
type backends interface {
	Policies(ctx context.Context, cfg config) (policyOps, error)
	History(ctx context.Context, cfg config) (historyReader, error)
	Close() error
}

// deps is everything the command tree needs from outside, so tests can run
// commands in-process against fakes.
type deps struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time
	// progress says whether stderr is a terminal a progress bar may draw on.
	progress bool
	backends backends
}

// config is the global flags, after environment fallbacks, and the
// workflow settings.
type config struct {
	// Address and Namespace are the Temporal connection's, as loaded from
	// the profile, the TEMPORAL_* environment and the flags.
	Address   string
	Namespace string
	// Temporal is what the Temporal CLI's flags gave (--address, --api-key,
	// --tls-cert-path, --profile, --codec-endpoint, …); conn is the whole
	// connection, loaded by validateConfig.
	Temporal    temporalconn.Overrides
	conn        *temporalconn.Conn
	TaskQueue   string
	DatabaseURL string
	JSON        bool
	Timeout     time.Duration
	// Settings go to every policy run the CLI starts. They come from the
	// same environment variables the worker reads (RETRY_BUDGET,
	// IDLE_TIMEOUT, …), so a run started here behaves like one the
	// ingress starts.
	Settings workflows.Settings
	// MaxFutureSkew is MAX_FUTURE_SKEW, read as the worker reads it, so
	// the CLI refuses the events the ingress refuses.
	MaxFutureSkew time.Duration
}

const (
	defaultDatabaseURL = "sqlite://.data/insuranceflow.db"
	defaultTimeout     = 30 * time.Second
)

// app is one invocation of the CLI: its dependencies and parsed flags.
type app struct {
	deps
	cfg config
	// parsed is set once cobra has parsed flags and arguments and handed
	// control to our code. An error before that is cobra's, and always
	// means bad command-line input.
	parsed bool
}

// execute runs the CLI with args and returns the exit code. It prints the
// outcome of a failure once: a human line on stderr, and with --json one
// error document on stdout.
func execute(ctx context.Context, d deps, args []string) exitCode {
	a := &app{deps: d}
	root := newRootCmd(a)
	if args == nil {
		// cobra reads os.Args when given nil.
		args = []string{}
	}
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if cerr := d.backends.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close connections: %w", cerr)
	}
	if err == nil {
		return exitOK
	}
	if !a.parsed {
		err = &usageError{Command: cmd.CommandPath(), Err: err}
	}
	code := exitCodeOf(err)
	a.printError(err, code)
	return code
}

// newRootCmd builds the command tree around a.
func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "starter",
		Short: "Report insurance results and operate policies of insuranceflow",
		Long: "starter is the operator's and developer's CLI for insuranceflow: it reports\n" +
			"insurance-result events through the policy workflows, shows and lists policies,\n" +
			"retries or skips parked callbacks, reads delivery history from the database,\n" +
			"and simulates traffic.\n\n" +
			"Policy runs it starts take their settings from the same environment variables\n" +
			"as the worker's: RETRY_INITIAL_INTERVAL, RETRY_BACKOFF, RETRY_MAX_INTERVAL,\n" +
			"RETRY_BUDGET, IDLE_TIMEOUT, EMPTY_RUN_GRACE, CONTINUE_AS_NEW_AFTER and PIPELINE_DELIVERY.\n" +
			"Events dated more than MAX_FUTURE_SKEW (default 10m) ahead of this host's\n" +
			"clock are refused, as the ingress refuses them.\n\n" +
			exitCodeHelp(),
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			a.parsed = true
			return a.validateConfig(cmd)
		},
	}
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)

	env := func(key, def string) string {
		if v := a.getenv(key); v != "" {
			return v
		}
		return def
	}
	pf := root.PersistentFlags()
	// The Temporal connection, with the Temporal CLI's flag names; unset
	// flags fall back to TEMPORAL_* and the temporal.toml profile, as in
	// the Temporal CLI (see temporalconn).
	t := &a.cfg.Temporal
	pf.StringVar(&t.Address, "address", "", "Temporal frontend host:port (env TEMPORAL_ADDRESS, default "+temporalconn.DefaultAddress+")")
	pf.StringVar(&t.Namespace, "namespace", "", "Temporal namespace (env TEMPORAL_NAMESPACE, default "+temporalconn.DefaultNamespace+")")
	pf.StringVar(&t.APIKey, "api-key", "", "Temporal Cloud API key; prefer env TEMPORAL_API_KEY, since a command line is visible to other users")
	pf.StringVar(&t.TLSCertPath, "tls-cert-path", "", "client certificate for mutual TLS (env TEMPORAL_TLS_CLIENT_CERT_PATH)")
	pf.StringVar(&t.TLSKeyPath, "tls-key-path", "", "client certificate's key (env TEMPORAL_TLS_CLIENT_KEY_PATH)")
	pf.StringVar(&t.TLSCAPath, "tls-ca-path", "", "CA of the server's certificate (env TEMPORAL_TLS_SERVER_CA_CERT_PATH)")
	pf.StringVar(&t.TLSServerName, "tls-server-name", "", "name the server's certificate must carry (env TEMPORAL_TLS_SERVER_NAME)")
	pf.StringVar(&t.Profile, "profile", "", "temporal.toml profile (env TEMPORAL_PROFILE)")
	pf.StringVar(&t.ConfigFile, "config-file", "", "temporal.toml with the profiles (env TEMPORAL_CONFIG_FILE)")
	pf.StringVar(&t.CodecEndpoint, "codec-endpoint", "", "remote codec server that encrypts and decrypts payloads, instead of PAYLOAD_KEYS_FILE (env TEMPORAL_CODEC_ENDPOINT)")
	pf.StringVar(&t.CodecAuth, "codec-auth", "", "Authorization header for the codec endpoint (env TEMPORAL_CODEC_AUTH)")
	pf.StringVar(&a.cfg.TaskQueue, "task-queue", env("TASK_QUEUE", workflows.DefaultTaskQueue), "task queue of the policy workflows (env TASK_QUEUE)")
	pf.StringVar(&a.cfg.DatabaseURL, "database-url", env("DATABASE_URL", defaultDatabaseURL), "database URL without a password (env DATABASE_URL, or DATABASE_URL_FILE: a file holding it, with its password)")
	pf.BoolVar(&a.cfg.JSON, "json", false, "print one JSON document instead of text")
	pf.DurationVar(&a.cfg.Timeout, "timeout", defaultTimeout, "limit on each call to Temporal or the database")

	root.AddCommand(
		newReportCmd(a),
		newStatusCmd(a),
		newListCmd(a),
		newOperatorCmd(a, operatorRetry),
		newOperatorCmd(a, operatorSkip),
		newHistoryCmd(a),
		newExportCmd(a),
		newImportCmd(a),
		newReconcileCmd(a),
		newSimulateCmd(a),
		newNotifyCmd(a),
	)
	return root
}

func exitCodeHelp() string {
	var b strings.Builder
	b.WriteString("Exit codes:\n")
	for _, d := range exitCodeDocs() {
		fmt.Fprintf(&b, "  %d  %s\n", d.code, d.meaning)
	}
	return strings.TrimRight(b.String(), "\n")
}

func (a *app) validateConfig(cmd *cobra.Command) error {
	var problems []string
	for _, name := range []string{"address", "namespace"} {
		if f := cmd.Flags().Lookup(name); f != nil && f.Changed && strings.TrimSpace(f.Value.String()) == "" {
			problems = append(problems, "--"+name+" must not be empty")
		}
	}
	if conn, err := temporalconn.Load(temporalconn.Func(a.getenv), a.cfg.Temporal); err != nil {
		problems = append(problems, err.Error())
	} else {
		a.cfg.conn = &conn
		a.cfg.Address, a.cfg.Namespace = conn.Options.HostPort, conn.Options.Namespace
	}
	if problem := a.resolveDatabaseURL(cmd); problem != "" {
		problems = append(problems, problem)
	}
	for _, f := range []struct{ name, value string }{
		{"task-queue", a.cfg.TaskQueue},
		{"database-url", a.cfg.DatabaseURL},
	} {
		if strings.TrimSpace(f.value) == "" {
			problems = append(problems, "--"+f.name+" must not be empty")
		}
	}
	if a.cfg.Timeout <= 0 {
		problems = append(problems, fmt.Sprintf("--timeout must be positive, got %s", a.cfg.Timeout))
	}
	settings, err := workflows.SettingsFromEnv(a.getenv)
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		// One problem per unusable variable, each naming its variable.
		for _, e := range joined.Unwrap() {
			problems = append(problems, e.Error())
		}
	} else if err != nil {
		problems = append(problems, err.Error())
	}
	a.cfg.Settings = settings
	skew, err := policyclient.MaxFutureSkewFromEnv(a.getenv)
	if err != nil {
		problems = append(problems, err.Error())
	}
	a.cfg.MaxFutureSkew = skew
	if len(problems) > 0 {
		return &usageError{Command: cmd.CommandPath(), Err: errors.New(strings.Join(problems, "; "))}
	}
	return nil
}

// resolveDatabaseURL settles where the database URL comes from:
// --database-url, DATABASE_URL or the file DATABASE_URL_FILE names. A URL
// with a password is refused as a flag, since a command line is visible to
// every user of the host (ps, /proc). It returns the problem, or "".
func (a *app) resolveDatabaseURL(cmd *cobra.Command) string {
	flagGiven := false
	if f := cmd.Flags().Lookup("database-url"); f != nil {
		flagGiven = f.Changed
	}
	file := a.getenv("DATABASE_URL_FILE")
	switch {
	case file != "" && (flagGiven || a.getenv("DATABASE_URL") != ""):
		return "give the database URL by --database-url or DATABASE_URL, or by DATABASE_URL_FILE, not both"
	case file != "":
		u, warn, err := secretfile.Read(file)
		if err != nil {
			// os's and secretfile's errors name the file, never its content.
			return "DATABASE_URL_FILE: cannot read the database URL: " + err.Error()
		}
		if warn != nil {
			fmt.Fprintln(a.stderr, "warning: DATABASE_URL_FILE:", warn.Error())
		}
		a.cfg.DatabaseURL = strings.TrimSpace(u)
	case flagGiven && store.URLHasPassword(a.cfg.DatabaseURL):
		// Never repeat the URL: it holds the password.
		return "--database-url carries a password, and a command line is visible to every user of the host; " +
			"put the URL in DATABASE_URL, or in a file only you can read named by DATABASE_URL_FILE"
	}
	return ""
}

// call bounds one backend call by --timeout.
func (a *app) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, a.cfg.Timeout)
}

func (a *app) policies(ctx context.Context) (policyOps, error) {
	ctx, cancel := a.call(ctx)
	defer cancel()
	return a.backends.Policies(ctx, a.cfg)
}

func (a *app) history(ctx context.Context) (historyReader, error) {
	ctx, cancel := a.call(ctx)
	defer cancel()
	return a.backends.History(ctx, a.cfg)
}

// emit prints a command's result: doc as JSON with --json, else text.
func (a *app) emit(doc any, text func(w io.Writer) error) error {
	if a.cfg.JSON {
		return writeJSON(a.stdout, doc)
	}
	return text(a.stdout)
}

func writeJSON(w io.Writer, doc any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

// errorDoc is the --json document of a failed command.
type errorDoc struct {
	Error errorBody `json:"error"`
}

type errorBody struct {
	Kind     string                 `json:"kind"`
	ExitCode int                    `json:"exit_code"`
	Message  string                 `json:"message"`
	Reason   string                 `json:"reason,omitempty"`   // rejections
	State    string                 `json:"state,omitempty"`    // illegal transitions
	Allowed  []string               `json:"allowed,omitempty"`  // illegal transitions
	Problems []insurance.FieldError `json:"problems,omitempty"` // validation errors
}

func newErrorBody(err error, code exitCode) errorBody {
	body := errorBody{Kind: code.kind(), ExitCode: int(code), Message: err.Error()}
	var (
		rejection  *policyclient.Rejection
		validation *insurance.ValidationError
	)
	if errors.As(err, &rejection) {
		body.Reason = rejection.Reason
		body.Message = rejection.Message
		if d := rejection.Details; d != nil {
			body.State = string(d.State)
			body.Allowed = d.AllowedStages
		}
	}
	if errors.As(err, &validation) {
		body.Problems = validation.Problems
	}
	if c := policyclient.Classify(err); body.Reason == "" && c.Reason != "" && c.Kind != policyclient.KindInvalid {
		// A contract error the client passes on as is (store_unavailable,
		// store_conflict): scripts branch on its type, and its message is
		// the workflow's, without the call chain.
		body.Reason, body.Message = c.Reason, c.Message
	}
	return body
}

func (a *app) printError(err error, code exitCode) {
	var shown *shownError
	if a.cfg.JSON && !errors.As(err, &shown) {
		// Nothing useful can be done if stdout is gone; stderr still gets the text.
		_ = writeJSON(a.stdout, errorDoc{Error: newErrorBody(err, code)})
	}
	fmt.Fprintln(a.stderr, humanError(err))
	var usage *usageError
	if errors.As(err, &usage) && usage.Command != "" {
		fmt.Fprintf(a.stderr, "Run '%s --help' for usage.\n", usage.Command)
	}
}

// humanError renders an error for a person: a rejection as the report
// line, a validation error with one field problem per line.
func humanError(err error) string {
	var (
		simulation *simulationError
		rejection  *policyclient.Rejection
		validation *insurance.ValidationError
	)
	switch {
	case errors.As(err, &simulation):
		// Before the rejection case: the counts matter more than the first
		// problem, which the message includes anyway.
		return "error: " + simulation.Error()
	case errors.As(err, &rejection):
		return formatRejection(rejection)
	case errors.As(err, &validation):
		var b strings.Builder
		b.WriteString("invalid insurance result:")
		for _, p := range validation.Problems {
			fmt.Fprintf(&b, "\n  %s: %s", p.Field, p.Message)
		}
		return b.String()
	default:
		return "error: " + err.Error()
	}
}
