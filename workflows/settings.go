package workflows

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Setting defaults (see Settings).
const (
	DefaultRetryInitialInterval = time.Second
	DefaultRetryBackoff         = 2.0
	DefaultRetryMaxInterval     = 5 * time.Minute
	DefaultRetryBudget          = 24 * time.Hour
	DefaultIdleTimeout          = 30 * 24 * time.Hour
	DefaultEmptyRunGrace        = time.Minute
	DefaultContinueAsNewAfter   = 500
	DefaultNotifyRetryBudget    = 24 * time.Hour
)

// SettingsError names a Settings field and what is wrong with it.
type SettingsError struct {
	Field   string
	Problem string
}

func (e *SettingsError) Error() string { return "settings " + e.Field + ": " + e.Problem }

// WithDefaults returns s with every zero field set to its default.
func (s Settings) WithDefaults() Settings {
	if s.RetryInitialInterval == 0 {
		s.RetryInitialInterval = DefaultRetryInitialInterval
	}
	if s.RetryBackoff == 0 {
		s.RetryBackoff = DefaultRetryBackoff
	}
	if s.RetryMaxInterval == 0 {
		s.RetryMaxInterval = DefaultRetryMaxInterval
	}
	if s.RetryBudget == 0 {
		s.RetryBudget = DefaultRetryBudget
	}
	if s.IdleTimeout == 0 {
		s.IdleTimeout = DefaultIdleTimeout
	}
	if s.EmptyRunGrace == 0 {
		s.EmptyRunGrace = DefaultEmptyRunGrace
	}
	if s.ContinueAsNewAfter == 0 {
		s.ContinueAsNewAfter = DefaultContinueAsNewAfter
	}
	if s.NotifyRetryBudget == 0 {
		s.NotifyRetryBudget = DefaultNotifyRetryBudget
	}
	return s
}

// Validate returns a *SettingsError for the first unusable field: a negative
// duration or count, a backoff coefficient below 1 (Temporal refuses it), or
// a maximum retry interval below the initial one. Zero fields are fine.
func (s Settings) Validate() error {
	for _, d := range []struct {
		field string
		value time.Duration
	}{
		{"retry_initial_interval", s.RetryInitialInterval},
		{"retry_max_interval", s.RetryMaxInterval},
		{"retry_budget", s.RetryBudget},
		{"idle_timeout", s.IdleTimeout},
		{"empty_run_grace", s.EmptyRunGrace},
		{"notify_retry_budget", s.NotifyRetryBudget},
	} {
		if d.value < 0 {
			return &SettingsError{Field: d.field, Problem: fmt.Sprintf("%s is negative", d.value)}
		}
	}
	if s.ContinueAsNewAfter < 0 {
		return &SettingsError{Field: "continue_as_new_after", Problem: fmt.Sprintf("%d is negative", s.ContinueAsNewAfter)}
	}
	if s.RetryBackoff != 0 && s.RetryBackoff < 1 {
		return &SettingsError{Field: "retry_backoff", Problem: fmt.Sprintf("%g is below 1", s.RetryBackoff)}
	}
	d := s.WithDefaults()
	if d.RetryMaxInterval < d.RetryInitialInterval {
		return &SettingsError{Field: "retry_max_interval", Problem: fmt.Sprintf("%s is below retry_initial_interval %s",
			d.RetryMaxInterval, d.RetryInitialInterval)}
	}
	return nil
}

// EnvError names the environment variable whose value SettingsFromEnv cannot
// use. Values are quoted in Problem: they are durations and numbers, never
// secrets.
type EnvError struct {
	Variable string // e.g. "RETRY_BUDGET"
	Problem  string
}

func (e *EnvError) Error() string { return e.Variable + ": " + e.Problem }

// SettingsFromEnv reads Settings from the environment, one variable per
// field, named as the field's JSON name in upper case: RETRY_INITIAL_INTERVAL,
// RETRY_BACKOFF, RETRY_MAX_INTERVAL, RETRY_BUDGET, IDLE_TIMEOUT,
// EMPTY_RUN_GRACE, NOTIFY_RETRY_BUDGET (durations such as 30s or 24h), CONTINUE_AS_NEW_AFTER (a
// count). An unset or blank variable leaves its field zero, i.e. the default;
// but Pipeline is on unless PIPELINE_DELIVERY says false, and Notify follows
// NOTIFY_URL.
//
// Every process that starts policy runs (the worker's ingress, the starter
// CLI) reads its settings here, so runs started by any of them behave alike.
// The error joins one *EnvError per unusable variable.
func SettingsFromEnv(getenv func(string) string) (Settings, error) {
	var (
		s    Settings
		errs []error
	)
	value := func(name string) string { return strings.TrimSpace(getenv(name)) }
	duration := func(name string, dst *time.Duration) {
		v := value(name)
		if v == "" {
			return
		}
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			errs = append(errs, &EnvError{Variable: name, Problem: fmt.Sprintf("%q is not a duration (e.g. 30s, 5m, 24h)", v)})
		case d < 0:
			errs = append(errs, &EnvError{Variable: name, Problem: fmt.Sprintf("%q is negative", v)})
		default:
			*dst = d
		}
	}
	duration("RETRY_INITIAL_INTERVAL", &s.RetryInitialInterval)
	duration("RETRY_MAX_INTERVAL", &s.RetryMaxInterval)
	duration("RETRY_BUDGET", &s.RetryBudget)
	duration("IDLE_TIMEOUT", &s.IdleTimeout)
	duration("EMPTY_RUN_GRACE", &s.EmptyRunGrace)
	duration("NOTIFY_RETRY_BUDGET", &s.NotifyRetryBudget)
	// Runs notify when the process starting them has NOTIFY_URL: the
	// worker's ingress and the starter read the same configuration.
	s.Notify = value("NOTIFY_URL") != ""
	s.Pipeline = true
	if v := value("PIPELINE_DELIVERY"); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, &EnvError{Variable: "PIPELINE_DELIVERY", Problem: fmt.Sprintf("%q is not true or false", v)})
		} else {
			s.Pipeline = on
		}
	}
	if v := value("RETRY_BACKOFF"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 1 {
			errs = append(errs, &EnvError{Variable: "RETRY_BACKOFF", Problem: fmt.Sprintf("%q is not a number of at least 1 (e.g. 2)", v)})
		} else {
			s.RetryBackoff = f
		}
	}
	if v := value("CONTINUE_AS_NEW_AFTER"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			errs = append(errs, &EnvError{Variable: "CONTINUE_AS_NEW_AFTER", Problem: fmt.Sprintf("%q is not a non-negative whole number", v)})
		} else {
			s.ContinueAsNewAfter = n
		}
	}
	if len(errs) > 0 {
		return Settings{}, errors.Join(errs...)
	}
	if err := s.Validate(); err != nil {
		var serr *SettingsError
		if errors.As(err, &serr) {
			// Each field's JSON name is its variable's name in lower case.
			return Settings{}, &EnvError{Variable: strings.ToUpper(serr.Field), Problem: serr.Problem}
		}
		return Settings{}, err
	}
	return s, nil
}
