package workflows

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSettingsFromEnv(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want Settings
		// wantVars are the variables the error must name, in order.
		wantVars []string
		wantMsg  string
	}{
		{name: "nothing set: all defaults, pipelining on", env: nil, want: Settings{Pipeline: true}},
		{
			name: "every variable",
			env: map[string]string{
				"RETRY_INITIAL_INTERVAL": "2s",
				"RETRY_BACKOFF":          "1.5",
				"RETRY_MAX_INTERVAL":     "10m",
				"RETRY_BUDGET":           "48h",
				"IDLE_TIMEOUT":           "168h",
				"EMPTY_RUN_GRACE":        "90s",
				"CONTINUE_AS_NEW_AFTER":  "200",
				"PIPELINE_DELIVERY":      "false",
			},
			want: Settings{RetryInitialInterval: 2 * time.Second, RetryBackoff: 1.5, RetryMaxInterval: 10 * time.Minute,
				RetryBudget: 48 * time.Hour, IdleTimeout: 168 * time.Hour, EmptyRunGrace: 90 * time.Second, ContinueAsNewAfter: 200},
		},
		{
			name: "blank values are unset",
			env:  map[string]string{"RETRY_BUDGET": "  ", "EMPTY_RUN_GRACE": " 30s "},
			want: Settings{EmptyRunGrace: 30 * time.Second, Pipeline: true},
		},
		{
			name:     "not a duration",
			env:      map[string]string{"IDLE_TIMEOUT": "30 days"},
			wantVars: []string{"IDLE_TIMEOUT"},
			wantMsg:  `IDLE_TIMEOUT: "30 days" is not a duration (e.g. 30s, 5m, 24h)`,
		},
		{
			name:     "negative grace",
			env:      map[string]string{"EMPTY_RUN_GRACE": "-1m"},
			wantVars: []string{"EMPTY_RUN_GRACE"},
			wantMsg:  `EMPTY_RUN_GRACE: "-1m" is negative`,
		},
		{
			name:     "every bad variable is named",
			env:      map[string]string{"RETRY_BUDGET": "soon", "CONTINUE_AS_NEW_AFTER": "-5", "RETRY_BACKOFF": "0.5"},
			wantVars: []string{"RETRY_BUDGET", "RETRY_BACKOFF", "CONTINUE_AS_NEW_AFTER"},
		},
		{
			name:     "pipelining is not a boolean",
			env:      map[string]string{"PIPELINE_DELIVERY": "sometimes"},
			wantVars: []string{"PIPELINE_DELIVERY"},
			wantMsg:  `PIPELINE_DELIVERY: "sometimes" is not true or false`,
		},
		{
			name:     "count is not a number",
			env:      map[string]string{"CONTINUE_AS_NEW_AFTER": "lots"},
			wantVars: []string{"CONTINUE_AS_NEW_AFTER"},
			wantMsg:  `CONTINUE_AS_NEW_AFTER: "lots" is not a non-negative whole number`,
		},
		{
			name:     "backoff is not finite",
			env:      map[string]string{"RETRY_BACKOFF": "NaN"},
			wantVars: []string{"RETRY_BACKOFF"},
		},
		{
			name:     "inconsistent values name the variable",
			env:      map[string]string{"RETRY_INITIAL_INTERVAL": "10m", "RETRY_MAX_INTERVAL": "1m"},
			wantVars: []string{"RETRY_MAX_INTERVAL"},
			wantMsg:  "RETRY_MAX_INTERVAL: 1m0s is below retry_initial_interval 10m0s",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SettingsFromEnv(func(k string) string { return tt.env[k] })
			if len(tt.wantVars) == 0 {
				if err != nil {
					t.Fatalf("SettingsFromEnv: %v", err)
				}
				if got != tt.want {
					t.Fatalf("settings = %+v, want %+v", got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("SettingsFromEnv = %+v, want an error naming %v", got, tt.wantVars)
			}
			if got != (Settings{}) {
				t.Errorf("settings = %+v alongside an error, want zero", got)
			}
			var named []string
			for _, e := range unjoin(err) {
				var envErr *EnvError
				if !errors.As(e, &envErr) {
					t.Fatalf("error %v is not an *EnvError", e)
				}
				named = append(named, envErr.Variable)
			}
			if strings.Join(named, ",") != strings.Join(tt.wantVars, ",") {
				t.Errorf("errors name %v, want %v (%v)", named, tt.wantVars, err)
			}
			if tt.wantMsg != "" && err.Error() != tt.wantMsg {
				t.Errorf("error = %q, want %q", err.Error(), tt.wantMsg)
			}
		})
	}
}

// unjoin lists the errors errors.Join put together, or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
