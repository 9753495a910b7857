package top

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// assertNoSecret fails if s holds the app secret, the session or the
// account manager's name.
func assertNoSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, leak := range []string{testSecret.Reveal(), testSession.Reveal(), testManagerName} {
		if strings.Contains(s, leak) {
			t.Fatalf("%s leaks %q: %s", what, leak, s)
		}
	}
}

func TestSecretRendersRedacted(t *testing.T) {
	s := testSecret
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10s", "%T"} {
		got := fmt.Sprintf(verb, s)
		if verb == "%T" {
			if got != "top.Secret" {
				t.Fatalf("%%T=%q, want top.Secret", got)
			}
			continue
		}
		if got != "[redacted]" {
			t.Fatalf("Sprintf(%s)=%q, want [redacted]", verb, got)
		}
	}
	if got := fmt.Sprint(s) + fmt.Sprintln(s); got != "[redacted][redacted]\n" {
		t.Fatalf("Sprint+Sprintln=%q, want [redacted][redacted]\\n", got)
	}
	b, err := json.Marshal(map[string]any{"secret": s, "list": []Secret{s}})
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	if got, want := string(b), `{"list":["[redacted]"],"secret":"[redacted]"}`; got != want {
		t.Fatalf("JSON=%s, want %s", got, want)
	}
	if s.Reveal() != "app-secret-0123456789abcdef" {
		t.Fatalf("Reveal=%q, want the value", s.Reveal())
	}
}

func TestNothingPrintsSecrets(t *testing.T) {
	srv, _ := recordingGateway(t, 200, okNormal)
	cfg := testConfig(srv.URL + "/router/rest")
	cfg.Session = testSession
	c := newTestClient(t, cfg)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		assertNoSecret(t, "Config "+verb, fmt.Sprintf(verb, cfg))
		assertNoSecret(t, "*Config "+verb, fmt.Sprintf(verb, &cfg))
		assertNoSecret(t, "Client "+verb, fmt.Sprintf(verb, c))
		assertNoSecret(t, "Client value "+verb, fmt.Sprintf(verb, *c))
	}
	if got := c.String(); !strings.Contains(got, srv.URL) || !strings.Contains(got, testAppKey) || !strings.Contains(got, APIMethod) {
		t.Fatalf("String()=%q, want gateway, app key and method", got)
	}
	if got := fmt.Sprintf("%#v", c); got != c.String() {
		t.Fatalf("%%#v=%q, want String() %q", got, c.String())
	}
	if got := fmt.Sprintf("%+v", cfg); !strings.Contains(got, "AppSecret:[redacted]") || !strings.Contains(got, "Session:[redacted]") {
		t.Fatalf("%%+v of Config=%s, want redacted secrets shown as such", got)
	}
}

func TestSlogRedacts(t *testing.T) {
	cfg := testConfig("https://user:pw@eco.taobao.com/router/rest")
	cfg.Session = testSession
	c := newTestClient(t, cfg)
	r := testResult()
	o := ParseResponse(200, []byte(okNormal), false)
	handlers := map[string]func(*bytes.Buffer) slog.Handler{
		"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	}
	for name, h := range handlers {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(h(&buf))
			log.Info("callback", "config", cfg, "client", c, "secret", cfg.AppSecret, "session", cfg.Session,
				"result", r, "outcome", o, slog.Any("config_ptr", &cfg))
			out := buf.String()
			assertNoSecret(t, name+" log", out)
			if strings.Contains(out, ":pw@") {
				t.Fatalf("%s log leaks the URL password: %s", name, out)
			}
			for _, want := range []string{testAppKey, "eco.taobao.com", "24010900100YSKSSG", "delivered"} {
				if !strings.Contains(out, want) {
					t.Fatalf("%s log lacks %q: %s", name, want, out)
				}
			}
		})
	}
}

func TestCallbackScrubsEchoedSecrets(t *testing.T) {
	// A misbehaving gateway that quotes the request back in its answers.
	tests := []struct {
		name string
		body func() string
	}{
		{"fail_message", func() string {
			return string(SuccessBody(APIMethod, false, CallbackResponse{FailCode: "MANAGER_UNKNOWN",
				FailMessage: "客户经理" + testManagerName + "不存在, session " + testSession.Reveal()}))
		}},
		{"sub_msg", func() string {
			return string(ErrorBody(ErrorResponse{Code: 27, Msg: "Invalid Session", SubCode: "isv.invalid-session",
				SubMsg: "session " + testSession.Reveal() + " expired; secret " + testSecret.Reveal()}))
		}},
		{"unparsable body", func() string { return "<pre>" + testManagerName + " " + testSession.Reveal() + "</pre>" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = w.Write([]byte(tt.body()))
			}))
			t.Cleanup(srv.Close)
			cfg := testConfig(srv.URL)
			cfg.Session = testSession
			o := newTestClient(t, cfg).Callback(context.Background(), testResult())
			all := fmt.Sprintf("%+v %s", o, o.Summary())
			assertNoSecret(t, "outcome", all)
			if !strings.Contains(all, "[redacted]") {
				t.Fatalf("outcome %s does not show where text was redacted", all)
			}
		})
	}
}
