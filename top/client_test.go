package top

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/insurance"
)

const (
	testAppKey             = "12345678"
	testSecret      Secret = "app-secret-0123456789abcdef"
	testSession     Secret = "session-6100e23ABCDEF99"
	testManagerName        = "王小丫"
)

// testNow is a fixed clock: 01:55 UTC is 09:55 in GMT+8.
var testNow = time.Date(2025, 4, 8, 1, 55, 0, 0, time.UTC)

func testResult() insurance.Result {
	return insurance.Result{
		BizID:                  "24010900100YSKSSG",
		PolicyNumber:           "12345678A",
		InsuranceCompany:       insurance.CompanyCPIC,
		Stage:                  insurance.StageUnderwrite,
		Status:                 insurance.StatusSuccess,
		TimeOfOccurrence:       "2025-04-08 09:55:00",
		BankAccountManagerName: testManagerName,
		InsuranceDocument:      "oss:aakkloi122",
		InsuranceType:          insurance.TypeHomeProperty,
		RequestID:              "req-24010900100YSKSSG-2-1",
	}
}

func testConfig(gateway string) Config {
	return Config{
		GatewayURL: gateway,
		AppKey:     testAppKey,
		AppSecret:  testSecret,
		Now:        func() time.Time { return testNow },
	}
}

func newTestClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// posted is what a gateway handler saw of one request.
type posted struct {
	method, contentType, rawQuery string
	form                          url.Values
	err                           error
}

// recordingGateway answers every request with status and body, and hands
// what it received to the test through the returned channel.
func recordingGateway(t *testing.T, status int, body string) (*httptest.Server, <-chan posted) {
	t.Helper()
	seen := make(chan posted, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := posted{method: r.Method, contentType: r.Header.Get("Content-Type"), rawQuery: r.URL.RawQuery}
		p.err = r.ParseForm()
		p.form = r.PostForm
		seen <- p
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, seen
}

func TestCallbackPostsSignedForm(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   map[string]string // optional params and their expected value ("" = absent)
	}{
		{"defaults", func(*Config) {}, map[string]string{ParamSession: "", ParamSimplify: "", ParamPartnerID: "", ParamSignMethod: "hmac-sha256"}},
		{"md5 with session", func(c *Config) { c.SignMethod = SignMD5; c.Session = testSession },
			map[string]string{ParamSession: testSession.Reveal(), ParamSimplify: "", ParamSignMethod: "md5"}},
		{"hmac simplify partner", func(c *Config) { c.SignMethod = SignHMAC; c.Simplify = true; c.PartnerID = "insuranceflow-1.0" },
			map[string]string{ParamSimplify: "true", ParamPartnerID: "insuranceflow-1.0", ParamSignMethod: "hmac"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, seen := recordingGateway(t, 200, okNormal)
			cfg := testConfig(srv.URL + "/router/rest")
			tt.modify(&cfg)
			c := newTestClient(t, cfg)
			r := testResult()

			o := c.Callback(context.Background(), r)
			if o.Class != ClassDelivered {
				t.Fatalf("class=%v (%s), want delivered", o.Class, o.Summary())
			}
			p := <-seen
			if p.err != nil {
				t.Fatalf("server could not parse the form: %v", p.err)
			}
			if p.method != http.MethodPost || p.contentType != ContentType || p.rawQuery != "" {
				t.Fatalf("method=%s content-type=%q query=%q, want POST %q and no query", p.method, p.contentType, p.rawQuery, ContentType)
			}
			system := map[string]string{
				ParamMethod: APIMethod, ParamAppKey: testAppKey, ParamTimestamp: "2025-04-08 09:55:00",
				ParamFormat: "json", ParamVersion: "2.0",
			}
			for k, v := range tt.want {
				system[k] = v
			}
			for k, want := range system {
				if got := p.form.Get(k); got != want {
					t.Fatalf("param %s=%q, want %q", k, got, want)
				}
				if want == "" && p.form.Has(k) {
					t.Fatalf("param %s sent empty, want it left out", k)
				}
			}
			if err := VerifySignature(p.form, testSecret); err != nil {
				t.Fatalf("posted signature does not verify: %v", err)
			}
			wantJSON, err := r.APIJSON()
			if err != nil {
				t.Fatalf("APIJSON: %v", err)
			}
			if got := p.form.Get(ParamRequest); got != wantJSON {
				t.Fatalf("%s=%s, want %s", ParamRequest, got, wantJSON)
			}
			if !strings.Contains(p.form.Get(ParamRequest), testManagerName) {
				t.Fatalf("the manager's name must reach TOP; request param %s", p.form.Get(ParamRequest))
			}
			if got, want := len(p.form), len(system)-countEmpty(tt.want)+2; got != want {
				t.Fatalf("%d params posted (%v), want %d", got, keys(p.form), want)
			}

			// Form returns exactly what was posted.
			form, err := c.Form(r, testNow)
			if err != nil {
				t.Fatalf("Form: %v", err)
			}
			if form.Encode() != p.form.Encode() {
				t.Fatalf("Form=%s, posted %s", form.Encode(), p.form.Encode())
			}
		})
	}
}

func countEmpty(m map[string]string) int {
	n := 0
	for _, v := range m {
		if v == "" {
			n++
		}
	}
	return n
}

func keys(v url.Values) []string {
	var ks []string
	for k := range v {
		ks = append(ks, k)
	}
	return ks
}

func TestFormSignatureCoversEveryParam(t *testing.T) {
	cfg := testConfig("https://eco.taobao.com/router/rest")
	cfg.Session = testSession
	c := newTestClient(t, cfg)
	form, err := c.Form(testResult(), testNow)
	if err != nil {
		t.Fatalf("Form: %v", err)
	}
	for name := range form {
		if name == ParamSign {
			continue
		}
		tampered := url.Values{}
		for k, v := range form {
			tampered[k] = append([]string(nil), v...)
		}
		tampered.Set(name, form.Get(name)+"x")
		if err := VerifySignature(tampered, testSecret); err == nil {
			t.Fatalf("changing %s kept the signature valid", name)
		}
	}
}

func TestFormRefusesInvalidResult(t *testing.T) {
	c := newTestClient(t, testConfig("https://eco.taobao.com/router/rest"))
	r := testResult()
	r.Stage = 9
	r.BankAccountManagerName = testManagerName + "\x07"
	_, err := c.Form(r, testNow)
	var re *RequestError
	if !errors.As(err, &re) || re.BizID != r.BizID {
		t.Fatalf("err=%v, want *RequestError for %s", err, r.BizID)
	}
	var ve *insurance.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err=%v does not wrap *insurance.ValidationError", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "stage") || strings.Contains(msg, testManagerName) {
		t.Fatalf("message %q must name stage and never the manager's name", msg)
	}

	// Callback turns it into a permanent outcome without calling the gateway.
	srv, seen := recordingGateway(t, 200, okNormal)
	c = newTestClient(t, testConfig(srv.URL))
	o := c.Callback(context.Background(), r)
	if o.Class != ClassPermanent || !strings.Contains(o.Detail, "stage") {
		t.Fatalf("outcome=%+v, want permanent naming stage", o)
	}
	if len(seen) != 0 {
		t.Fatalf("gateway called %d times for an invalid result, want 0", len(seen))
	}
}

func TestCallbackClassifiesGatewayAnswers(t *testing.T) {
	tests := []struct {
		name       string
		simplify   bool
		status     int
		header     map[string]string
		body       string
		class      Class
		code       int
		failCode   string
		retryAfter time.Duration
		detail     string
	}{
		{name: "success normal envelope", status: 200, body: okNormal, class: ClassDelivered},
		{name: "success simplified", simplify: true, status: 200, body: okSimple, class: ClassDelivered},
		{name: "call_success=false", status: 200, class: ClassRejected, failCode: "POLICY_NOT_FOUND",
			body: string(SuccessBody(APIMethod, false, CallbackResponse{FailCode: "POLICY_NOT_FOUND", FailMessage: "保单不存在"}))},
		{name: "isp sub_code", status: 200, class: ClassRetryable, code: 15,
			body: string(ErrorBody(ErrorResponse{Code: 15, Msg: "Remote service error", SubCode: "isp.remote-service-error"}))},
		{name: "isv sub_code", status: 200, class: ClassPermanent, code: 50,
			body: string(ErrorBody(ErrorResponse{Code: 50, Msg: "Remote service error", SubCode: "isv.invalid-parameter", SubMsg: "非法参数"}))},
		{name: "code 7 with seconds", status: 200, class: ClassRateLimited, code: 7, retryAfter: 17 * time.Second,
			body: string(ErrorBody(ErrorResponse{Code: 7, Msg: "App Call Limited", SubCode: "accesscontrol.limited-by-app-access-count", SubMsg: "This ban will last for 17 more seconds"}))},
		{name: "code 7 without seconds", status: 200, class: ClassRateLimited, code: 7, retryAfter: DefaultBan,
			body: string(ErrorBody(ErrorResponse{Code: 7, Msg: "App Call Limited"}))},
		{name: "code 10", status: 200, class: ClassRetryable, code: 10, body: string(ErrorBody(ErrorResponse{Code: 10, Msg: "Service Currently Unavailable"}))},
		{name: "code 11", status: 200, class: ClassPermanent, code: 11, body: string(ErrorBody(ErrorResponse{Code: 11, Msg: "Insufficient ISV Permissions"}))},
		{name: "code 25", status: 200, class: ClassPermanent, code: 25, body: string(ErrorBody(ErrorResponse{Code: 25, Msg: "Invalid Signature"}))},
		{name: "code 41", status: 200, class: ClassPermanent, code: 41, body: string(ErrorBody(ErrorResponse{Code: 41, Msg: "Invalid Arguments"}))},
		{name: "HTTP 502", status: 502, body: "<html>bad gateway</html>", class: ClassRetryable, detail: `Bad Gateway: "<html>bad gateway</html>"`},
		{name: "HTTP 503", status: 503, class: ClassRetryable},
		{name: "HTTP 429 with Retry-After", status: 429, header: map[string]string{"Retry-After": "42"}, class: ClassRateLimited, retryAfter: 42 * time.Second},
		{name: "HTTP 429 without Retry-After", status: 429, class: ClassRateLimited, retryAfter: DefaultBan},
		{name: "unparsable body", status: 200, body: "<html>maintenance</html>", class: ClassRetryable, detail: "unparsable response body"},
		{name: "empty body", status: 200, class: ClassRetryable, detail: "empty response body"},
		{name: "oversize body", status: 200, body: `{"call_success":true,"x":"` + strings.Repeat("a", MaxResponseBytes) + `"}`, class: ClassRetryable,
			detail: "response body exceeds 1048576 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			t.Cleanup(srv.Close)
			cfg := testConfig(srv.URL)
			cfg.Simplify = tt.simplify
			o := newTestClient(t, cfg).Callback(context.Background(), testResult())
			if o.Class != tt.class {
				t.Fatalf("class=%v, want %v (%s)", o.Class, tt.class, o.Summary())
			}
			if o.HTTPStatus != tt.status || o.Code != tt.code || o.FailCode != tt.failCode || o.RetryAfter != tt.retryAfter {
				t.Fatalf("outcome=%+v, want status %d code %d fail_code %q retry after %v", o, tt.status, tt.code, tt.failCode, tt.retryAfter)
			}
			if !strings.Contains(o.Detail, tt.detail) {
				t.Fatalf("detail=%q, want it to contain %q", o.Detail, tt.detail)
			}
			if o.Duration <= 0 {
				t.Fatalf("duration=%v, want it measured", o.Duration)
			}
		})
	}
}

func TestCallbackDoesNotFollowRedirects(t *testing.T) {
	target, seen := recordingGateway(t, 200, okNormal)
	redirect := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusFound))
	t.Cleanup(redirect.Close)
	o := newTestClient(t, testConfig(redirect.URL)).Callback(context.Background(), testResult())
	if o.Class != ClassPermanent || o.HTTPStatus != http.StatusFound {
		t.Fatalf("outcome=%s, want permanent HTTP 302", o.Summary())
	}
	if len(seen) != 0 {
		t.Fatalf("redirect target called %d times, want 0", len(seen))
	}
}

// hangingGateway never answers. It reads the body first, because the server
// only notices a client hang-up (cancelling r.Context) once the body is
// consumed; the release channel frees it at cleanup in any case. arrived,
// if not nil, is closed when the first request arrives.
func hangingGateway(t *testing.T, arrived chan struct{}) *httptest.Server {
	t.Helper()
	release := make(chan struct{})
	var once atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if arrived != nil && once.CompareAndSwap(false, true) {
			close(arrived)
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	return srv
}

func TestCallbackTransportFailures(t *testing.T) {
	t.Run("timeout", func(t *testing.T) {
		srv := hangingGateway(t, nil)
		cfg := testConfig(srv.URL)
		cfg.CallTimeout = 50 * time.Millisecond
		start := time.Now()
		o := newTestClient(t, cfg).Callback(context.Background(), testResult())
		if o.Class != ClassRetryable || !strings.Contains(o.Detail, "within call timeout 50ms") {
			t.Fatalf("outcome=%s, want retryable call timeout", o.Summary())
		}
		if elapsed := time.Since(start); elapsed > 5*time.Second {
			t.Fatalf("call took %v, want it bounded by the 50ms call timeout", elapsed)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("Listen: %v", err)
		}
		addr := ln.Addr().String()
		if err := ln.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		o := newTestClient(t, testConfig("http://"+addr+"/router/rest")).Callback(context.Background(), testResult())
		if o.Class != ClassRetryable || o.HTTPStatus != 0 || !strings.Contains(o.Detail, "refused") || !strings.Contains(o.Detail, addr) {
			t.Fatalf("outcome=%s, want retryable connection refused naming %s", o.Summary(), addr)
		}
	})
	t.Run("context cancelled before the call", func(t *testing.T) {
		srv, seen := recordingGateway(t, 200, okNormal)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		o := newTestClient(t, testConfig(srv.URL)).Callback(ctx, testResult())
		if o.Class != ClassRetryable || !strings.Contains(o.Detail, "abandoned by caller: context canceled") {
			t.Fatalf("outcome=%s, want retryable abandoned by caller", o.Summary())
		}
		if len(seen) != 0 {
			t.Fatalf("gateway called %d times with a cancelled context, want 0", len(seen))
		}
	})
	t.Run("context cancelled during the call", func(t *testing.T) {
		arrived := make(chan struct{})
		srv := hangingGateway(t, arrived)
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-arrived
			cancel()
		}()
		o := newTestClient(t, testConfig(srv.URL)).Callback(ctx, testResult())
		if o.Class != ClassRetryable || !strings.Contains(o.Detail, "abandoned by caller") {
			t.Fatalf("outcome=%s, want retryable abandoned by caller", o.Summary())
		}
	})
	t.Run("caller deadline shorter than call timeout", func(t *testing.T) {
		srv := hangingGateway(t, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		o := newTestClient(t, testConfig(srv.URL)).Callback(ctx, testResult())
		if o.Class != ClassRetryable || !strings.Contains(o.Detail, "context deadline exceeded") {
			t.Fatalf("outcome=%s, want retryable caller deadline", o.Summary())
		}
	})
	t.Run("nil client", func(t *testing.T) {
		var c *Client
		if o := c.Callback(context.Background(), testResult()); o.Class != ClassPermanent {
			t.Fatalf("outcome=%s, want permanent", o.Summary())
		}
	})
}

func TestCallbackUsesSharedHTTPClient(t *testing.T) {
	srv, _ := recordingGateway(t, 200, okNormal)
	var calls atomic.Int32
	shared := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		calls.Add(1)
		return http.DefaultTransport.RoundTrip(r)
	})}
	cfg := testConfig(srv.URL)
	cfg.HTTPClient = shared
	c := newTestClient(t, cfg)
	for range 3 {
		if o := c.Callback(context.Background(), testResult()); o.Class != ClassDelivered {
			t.Fatalf("outcome=%s, want delivered", o.Summary())
		}
	}
	if got := calls.Load(); got != 3 {
		t.Fatalf("shared client used %d times, want 3", got)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestNewValidatesConfig(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		field  string
		text   string
	}{
		{"missing gateway", func(c *Config) { c.GatewayURL = "" }, "GatewayURL", "is required"},
		{"bad scheme", func(c *Config) { c.GatewayURL = "ftp://eco.taobao.com/router/rest" }, "GatewayURL", `scheme must be http or https, got "ftp"`},
		{"no scheme", func(c *Config) { c.GatewayURL = "eco.taobao.com/router/rest" }, "GatewayURL", "scheme must be http or https"},
		{"no host", func(c *Config) { c.GatewayURL = "https:///router/rest" }, "GatewayURL", "has no host"},
		{"unparsable", func(c *Config) { c.GatewayURL = "http://user:" + testSecret.Reveal() + "@[::1/x" }, "GatewayURL", "is not a valid URL"},
		{"missing app key", func(c *Config) { c.AppKey = " " }, "AppKey", "is required"},
		{"missing secret", func(c *Config) { c.AppSecret = "" }, "AppSecret", "is required"},
		{"unknown sign method", func(c *Config) { c.SignMethod = "sha1" }, "SignMethod", `"sha1" is not md5, hmac or hmac-sha256`},
		{"negative connect timeout", func(c *Config) { c.ConnectTimeout = -time.Second }, "ConnectTimeout", "must not be negative"},
		{"negative call timeout", func(c *Config) { c.CallTimeout = -time.Second }, "CallTimeout", "must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(GatewaySandbox)
			cfg.Session = testSession
			tt.modify(&cfg)
			c, err := New(cfg)
			if c != nil || err == nil {
				t.Fatalf("New=%v, %v, want an error", c, err)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tt.field {
				t.Fatalf("err=%v, want *ConfigError for %s", err, tt.field)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.field) || !strings.Contains(msg, tt.text) {
				t.Fatalf("message %q, want it to name %s and say %q", msg, tt.field, tt.text)
			}
			assertNoSecret(t, "error", err.Error())
		})
	}
	t.Run("every problem reported", func(t *testing.T) {
		_, err := New(Config{SignMethod: "rsa"})
		for _, field := range []string{"GatewayURL", "AppKey", "AppSecret", "SignMethod"} {
			if !strings.Contains(err.Error(), "config "+field+":") {
				t.Fatalf("error %q does not report %s", err, field)
			}
		}
	})
	t.Run("defaults", func(t *testing.T) {
		c := newTestClient(t, Config{GatewayURL: GatewayProduction, AppKey: testAppKey, AppSecret: testSecret})
		if c.cfg.SignMethod != SignHMACSHA256 || c.cfg.ConnectTimeout != 15*time.Second || c.cfg.CallTimeout != 30*time.Second || c.cfg.Now == nil {
			t.Fatalf("defaults sign=%s connect=%v call=%v now set=%v, want hmac-sha256 15s 30s true",
				c.cfg.SignMethod, c.cfg.ConnectTimeout, c.cfg.CallTimeout, c.cfg.Now != nil)
		}
	})
}
