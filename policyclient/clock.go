package policyclient

import (
	"fmt"
	"strings"
	"time"

	"github.com/insuranceflow/insuranceflow/insurance"
)

// DefaultMaxFutureSkew is how far ahead of the server's clock an event's
// time_of_occurrence may be: room for business systems whose clocks run a
// little fast, far less than the gap between real events of a policy.
const DefaultMaxFutureSkew = 10 * time.Minute

// EnvMaxFutureSkew is the environment variable every process that reports
// events (the worker's ingress, the starter CLI) reads the bound from.
const EnvMaxFutureSkew = "MAX_FUTURE_SKEW"

// MaxFutureSkewFromEnv reads MAX_FUTURE_SKEW: a positive duration such as
// 10m; unset or blank is DefaultMaxFutureSkew. One parser, so the ingress
// and the CLI refuse the same events.
func MaxFutureSkewFromEnv(getenv func(string) string) (time.Duration, error) {
	v := strings.TrimSpace(getenv(EnvMaxFutureSkew))
	if v == "" {
		return DefaultMaxFutureSkew, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, &ArgumentError{Field: EnvMaxFutureSkew, Message: fmt.Sprintf("%q is not a positive duration (e.g. 10m)", v)}
	}
	return d, nil
}

// checkClock refuses an event dated more than MaxFutureSkew ahead of Now
// (see insurance.Result.CheckNotAhead).
func (c *Client) checkClock(r insurance.Result) error {
	skew := c.MaxFutureSkew
	if skew == 0 {
		skew = DefaultMaxFutureSkew
	}
	return r.CheckNotAhead(c.now(), skew)
}
