package ingress

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/top"
)

// FuzzTOPRouter posts arbitrary form bodies (and query strings) to
// /router/rest. Whatever arrives, the endpoint must not panic, must answer
// HTTP 200 with exactly one TOP envelope, and must reach Policies.Report
// only for a request whose signature verifies against the app secret, from
// the configured app_key, within the clock skew.
func FuzzTOPRouter(f *testing.F) {
	seed := func(method top.SignMethod, edit func(url.Values)) string {
		return signedForm(f, routerResult(), method, routerSecret, edit).Encode()
	}
	for _, m := range top.SignMethods() {
		f.Add(seed(m, nil), "")
		f.Add(seed(m, func(v url.Values) { v.Set(top.ParamSimplify, "true") }), "")
	}
	valid := seed(top.SignHMACSHA256, nil)
	f.Add(valid+"&"+top.ParamAppKey+"="+routerKey, "")                                 // a parameter twice
	f.Add(strings.Replace(valid, "stage%22%3A2", "stage%22%3A3", 1), "")               // changed after signing
	f.Add(seed(top.SignMD5, func(v url.Values) { v.Set(top.ParamRequest, "{}") }), "") // signed, but no event
	f.Add(seed(top.SignHMAC, func(v url.Values) { v.Set(top.ParamTimestamp, top.Timestamp(routerNow.Add(time.Hour))) }), "")
	f.Add("", valid) // everything in the query string
	f.Add("%zz=1&sign=00", "")
	f.Add("", "")
	f.Add("sign_method=hmac-sha256&sign=&app_key="+routerKey, "method="+top.APIMethod)

	fake := &fakePolicies{}
	srv, err := New(Config{
		Policies:     fake,
		Tokens:       []string{token},
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		TOPAppKey:    routerKey,
		TOPAppSecret: top.Secret(routerSecret),
		Now:          func() time.Time { return routerNow },
	})
	if err != nil {
		f.Fatal(err)
	}
	handler := srv.Handler()

	f.Fuzz(func(t *testing.T, body, query string) {
		target := TOPRouterPath
		if query != "" {
			target += "?" + query
		}
		req, err := http.NewRequest(http.MethodPost, "http://ingress.test"+TOPRouterPath, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		// Set RawQuery rather than parse the target: any bytes may arrive.
		req.URL.RawQuery = query
		req.Header.Set("Content-Type", top.ContentType)
		before := len(fake.reports())
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)

		if rec.Code != http.StatusOK {
			t.Fatalf("POST %s: HTTP %d, want 200 (body %s)", target, rec.Code, rec.Body)
		}
		var env map[string]json.RawMessage
		if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
			t.Fatalf("answer %q is not JSON: %v", rec.Body, err)
		}
		_, isError := env["error_response"]
		_, isNormal := env[top.ResponseRoot(top.APIMethod)]
		_, isSimple := env["call_success"]
		if n := btoi(isError) + btoi(isNormal) + btoi(isSimple); n != 1 {
			t.Fatalf("answer %s is not exactly one TOP envelope", rec.Body)
		}
		if bytes.Contains(rec.Body.Bytes(), []byte(routerSecret)) {
			t.Fatalf("answer %s repeats the app secret", rec.Body)
		}

		if len(fake.reports()) == before {
			return
		}
		// Report was reached: the request must be one a gateway would let
		// through. Rebuild its parameters the way the server reads them.
		params, err := url.ParseQuery(query)
		if err != nil {
			t.Fatalf("Report reached with an unparsable query %q", query)
		}
		bodyParams, err := url.ParseQuery(body)
		if err != nil {
			t.Fatalf("Report reached with an unparsable body %q", body)
		}
		for k, v := range bodyParams {
			params[k] = append(params[k], v...)
		}
		for k, v := range params {
			if len(v) != 1 {
				t.Fatalf("Report reached with parameter %q sent %d times", k, len(v))
			}
		}
		if err := top.VerifySignature(params, top.Secret(routerSecret)); err != nil {
			t.Fatalf("Report reached without a valid signature (%v): body %q query %q", err, body, query)
		}
		if params.Get(top.ParamAppKey) != routerKey || params.Get(top.ParamMethod) != top.APIMethod {
			t.Fatalf("Report reached for app_key %q method %q", params.Get(top.ParamAppKey), params.Get(top.ParamMethod))
		}
		at, err := top.ParseTimestamp(params.Get(top.ParamTimestamp))
		if err != nil || routerNow.Sub(at).Abs() > top.MaxClockSkew {
			t.Fatalf("Report reached with timestamp %q", params.Get(top.ParamTimestamp))
		}
		reported := fake.reports()[len(fake.reports())-1]
		want, err := insurance.Decode([]byte(params.Get(top.ParamRequest)))
		if err != nil || want != reported {
			t.Fatalf("Report got %+v, want the signed event %+v (%v)", reported, want, err)
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
