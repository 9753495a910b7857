package top

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/insuranceflow/insuranceflow/insurance"
)

// Defaults of Config, those of the official SDKs.
const (
	DefaultConnectTimeout = 15 * time.Second
	DefaultCallTimeout    = 30 * time.Second
)

// MaxResponseBytes bounds how much of a response body is read. This API's
// answers are a few hundred bytes; anything near the bound is not TOP.
const MaxResponseBytes = 1 << 20

// Config configures a Client.
type Config struct {
	GatewayURL string     // e.g. GatewayProduction; http or https
	AppKey     string     // app_key; not secret, sent in clear
	AppSecret  Secret     // signs every request; never sent
	SignMethod SignMethod // "" means DefaultSignMethod (hmac-sha256)
	Session    Secret     // session key, sent only when set
	Simplify   bool       // ask for the simplified response envelope
	PartnerID  string     // partner_id, sent only when set

	ConnectTimeout time.Duration // TCP connect bound; 0 means 15 s; ignored with HTTPClient
	CallTimeout    time.Duration // whole-call bound; 0 means 30 s
	HTTPClient     *http.Client  // optional, shared, used as is (its redirect policy too); nil builds one from ConnectTimeout
	// WrapTransport, when set, wraps the transport of the client built from
	// ConnectTimeout (tracing: a span per call and a traceparent header the
	// gateway can log); ignored with HTTPClient.
	WrapTransport func(http.RoundTripper) http.RoundTripper
	Now           func() time.Time
}

// LogValue logs the configuration without its secrets: only whether a
// session is set.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("gateway", redactURL(c.GatewayURL)),
		slog.String("app_key", c.AppKey),
		slog.String("sign_method", string(c.SignMethod)),
		slog.Bool("session", !c.Session.IsZero()),
		slog.Bool("simplify", c.Simplify),
		slog.String("partner_id", c.PartnerID),
		slog.Duration("connect_timeout", c.ConnectTimeout),
		slog.Duration("call_timeout", c.CallTimeout),
	)
}

// ConfigError names a Config field and what is wrong with it. New returns
// one per problem, joined with errors.Join.
type ConfigError struct {
	Field   string
	Problem string
}

func (e *ConfigError) Error() string { return "top: config " + e.Field + ": " + e.Problem }

// Client posts insurance results to a TOP gateway. It is safe for concurrent
// use; its HTTP client (and so its connection pool) is shared by all calls.
type Client struct {
	// cfg is behind a pointer on purpose: fmt prints a nested pointer as an
	// address, so even %v of a dereferenced Client cannot reach the secrets.
	cfg     *Config
	http    *http.Client
	gateway string // GatewayURL without any userinfo, for messages
}

// New validates cfg, fills its defaults and builds a Client. The error lists
// every problem found, each a *ConfigError.
func New(cfg Config) (*Client, error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &ConfigError{Field: field, Problem: fmt.Sprintf(format, args...)})
	}
	if u, err := url.Parse(cfg.GatewayURL); cfg.GatewayURL == "" {
		bad("GatewayURL", "is required (e.g. %s)", GatewayProduction)
	} else if err != nil {
		// The parse error would repeat the URL, which may hold a password.
		bad("GatewayURL", "is not a valid URL")
	} else if u.Scheme != "http" && u.Scheme != "https" {
		bad("GatewayURL", "scheme must be http or https, got %q", u.Scheme)
	} else if u.Host == "" {
		bad("GatewayURL", "has no host")
	}
	if strings.TrimSpace(cfg.AppKey) == "" {
		bad("AppKey", "is required")
	}
	if strings.TrimSpace(cfg.AppSecret.Reveal()) == "" {
		bad("AppSecret", "is required")
	}
	if m, err := ParseSignMethod(string(cfg.SignMethod)); err != nil {
		bad("SignMethod", "%q is not md5, hmac or hmac-sha256", string(cfg.SignMethod))
	} else {
		cfg.SignMethod = m
	}
	if cfg.ConnectTimeout < 0 {
		bad("ConnectTimeout", "must not be negative, got %s", cfg.ConnectTimeout)
	} else if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.CallTimeout < 0 {
		bad("CallTimeout", "must not be negative, got %s", cfg.CallTimeout)
	} else if cfg.CallTimeout == 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = newHTTPClient(cfg.ConnectTimeout)
		if cfg.WrapTransport != nil {
			hc.Transport = cfg.WrapTransport(hc.Transport)
		}
	}
	return &Client{cfg: &cfg, http: hc, gateway: redactURL(cfg.GatewayURL)}, nil
}

// newHTTPClient builds the client used when Config has none: connects bounded
// by connectTimeout, the whole call bounded per request by a context (not
// http.Client.Timeout, so the caller's context composes with it), proxies
// from the environment, and redirects not followed — following one would
// turn the POST into a GET without its signed body.
func newHTTPClient(connectTimeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   connectTimeout,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Transport:     transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// String names the gateway, app key and method; never a secret.
func (c *Client) String() string {
	if c == nil {
		return "top.Client(nil)"
	}
	return fmt.Sprintf("top.Client{gateway=%s app_key=%s method=%s sign_method=%s}",
		c.gateway, c.cfg.AppKey, APIMethod, c.cfg.SignMethod)
}

// GoString makes %#v print String's safe summary rather than the struct.
func (c *Client) GoString() string { return c.String() }

// Format prints String for every verb. It has a value receiver so that it
// also covers a dereferenced Client: without it, fmt's reflection path (for
// instance %s, which it reports as a bad verb for a struct) would print the
// unexported configuration, secrets included.
func (c Client) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, (&c).String()) }

// RequestError is returned by Form when the result cannot be sent. Its
// message comes from insurance.Result.Validate, which never repeats the
// account manager's name.
type RequestError struct {
	BizID string
	Err   error
}

func (e *RequestError) Error() string {
	return fmt.Sprintf("top: insurance result for biz_id %q cannot be sent: %v", e.BizID, e.Err)
}

func (e *RequestError) Unwrap() error { return e.Err }

// Form returns the exact form Callback posts for r at now: the system
// parameters, the result's compact JSON in ParamRequest, and the signature
// over all of them. It refuses a result that fails Validate, because TOP
// would only reject it after a round trip.
func (c *Client) Form(r insurance.Result, now time.Time) (url.Values, error) {
	if err := r.Validate(); err != nil {
		return nil, &RequestError{BizID: r.BizID, Err: err}
	}
	payload, err := r.APIJSON()
	if err != nil {
		return nil, &RequestError{BizID: r.BizID, Err: err}
	}
	form := url.Values{
		ParamMethod:     {APIMethod},
		ParamAppKey:     {c.cfg.AppKey},
		ParamTimestamp:  {Timestamp(now)},
		ParamFormat:     {FormatJSON},
		ParamVersion:    {Version},
		ParamSignMethod: {string(c.cfg.SignMethod)},
		ParamRequest:    {payload},
	}
	if !c.cfg.Session.IsZero() {
		form.Set(ParamSession, c.cfg.Session.Reveal())
	}
	if c.cfg.Simplify {
		form.Set(ParamSimplify, "true")
	}
	if c.cfg.PartnerID != "" {
		form.Set(ParamPartnerID, c.cfg.PartnerID)
	}
	sign, err := Sign(form, c.cfg.AppSecret, c.cfg.SignMethod)
	if err != nil {
		return nil, fmt.Errorf("top: sign request for biz_id %q: %w", r.BizID, err)
	}
	form.Set(ParamSign, sign)
	return form, nil
}

// Callback posts r to the gateway once and classifies what happened. It
// never panics and always returns a valid class: a result that cannot be
// sent is permanent; timeouts, cancellations and connection errors are
// retryable (the request may have landed, so retries rely on r.RequestID for
// idempotency); everything the gateway answers is classified by
// ParseResponse. Each call is bounded by CallTimeout and by ctx.
func (c *Client) Callback(ctx context.Context, r insurance.Result) (out Outcome) {
	start := time.Now()
	defer func() {
		out.Duration = time.Since(start)
		if c != nil {
			out = scrub(out, c.cfg.AppSecret.Reveal(), c.cfg.Session.Reveal(), r.BankAccountManagerName)
		}
	}()
	if c == nil {
		return Outcome{Class: ClassPermanent, Detail: "top client is nil"}
	}
	if ctx == nil {
		ctx = context.Background()
	}
	form, err := c.Form(r, c.cfg.Now())
	if err != nil {
		return Outcome{Class: ClassPermanent, Detail: err.Error()}
	}

	callCtx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(callCtx, http.MethodPost, c.cfg.GatewayURL, strings.NewReader(form.Encode()))
	if err != nil {
		return Outcome{Class: ClassPermanent, Detail: fmt.Sprintf("build request to %s: %s", c.gateway, errText(err))}
	}
	req.Header.Set("Content-Type", ContentType)
	req.Header.Set("Accept", "application/json")

	resp, err := c.http.Do(req)
	if err != nil {
		return Outcome{Class: ClassRetryable, Detail: c.transportDetail(ctx, callCtx, err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return Outcome{Class: ClassRetryable, HTTPStatus: resp.StatusCode,
			Detail: "read response: " + c.transportDetail(ctx, callCtx, err)}
	}
	if len(body) > MaxResponseBytes {
		return Outcome{Class: ClassRetryable, HTTPStatus: resp.StatusCode,
			Detail: fmt.Sprintf("response body exceeds %d bytes", MaxResponseBytes)}
	}
	out = ParseResponse(resp.StatusCode, body, c.cfg.Simplify)
	if out.Class == ClassRateLimited && out.Code == 0 {
		// An HTTP 429 (not a TOP ban) may say how long in Retry-After.
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), c.cfg.Now()); ok {
			out.RetryAfter = d
		}
	}
	return out
}

// transportDetail explains a failed exchange, distinguishing the caller's
// cancellation from our own CallTimeout from a network error.
func (c *Client) transportDetail(parent, call context.Context, err error) string {
	switch {
	case parent.Err() != nil:
		return "call abandoned by caller: " + parent.Err().Error()
	case errors.Is(call.Err(), context.DeadlineExceeded):
		return fmt.Sprintf("no answer from %s within call timeout %s", c.gateway, c.cfg.CallTimeout)
	}
	return fmt.Sprintf("POST %s: %s", c.gateway, errText(err))
}

// errText is an error's message without the URL that *url.Error prefixes,
// since transportDetail names the (redacted) gateway itself.
func errText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// retryAfter reads a Retry-After header: delay seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
		if n > int64(maxBan/time.Second) {
			return maxBan, true
		}
		return max(time.Duration(n)*time.Second, time.Second), true
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), maxBan), true
	}
	return 0, false
}

// scrub replaces any occurrence of the given values in an Outcome's text.
// A gateway or proxy that echoes the request (session, manager's name) must
// not smuggle it into stored outcomes and logs.
func scrub(o Outcome, values ...string) Outcome {
	fields := []*string{&o.Msg, &o.SubCode, &o.SubMsg, &o.FailCode, &o.FailMessage, &o.RequestID, &o.Detail}
	for _, v := range values {
		if v == "" {
			continue
		}
		for _, f := range fields {
			*f = strings.ReplaceAll(*f, v, redacted)
		}
		// Body snippets reach Detail through strconv.Quote, which escapes
		// quotes, backslashes and unprintable runes; scrub that spelling too.
		if q := strconv.Quote(v); q[1:len(q)-1] != v {
			q = q[1 : len(q)-1]
			for _, f := range fields {
				*f = strings.ReplaceAll(*f, q, redacted)
			}
		}
	}
	return o
}

// redactURL returns raw without userinfo, or a placeholder if it does not parse.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	u.User = nil
	return u.String()
}
