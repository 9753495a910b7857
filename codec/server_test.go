package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

const (
	uiOrigin   = "http://localhost:8233"
	codecToken = "codec-token-value-123"
)

type codecServer struct {
	url   string
	codec *Codec
	logs  *bytes.Buffer
}

func startServer(t *testing.T, tokens ...string) codecServer {
	t.Helper()
	c := mustCodec(t, mustKey(t, "k1", 1))
	logs := &bytes.Buffer{}
	s, err := NewServer(ServerConfig{
		Codec:          c,
		AllowedOrigins: DefaultCORSOrigins,
		Tokens:         tokens,
		MaxBodyBytes:   64 << 10,
		Logger:         slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	// Mounted as the worker mounts it: beside other routes on one mux.
	mux := http.NewServeMux()
	mux.Handle(PathPrefix, s.Handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "ingress", http.StatusTeapot) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return codecServer{url: srv.URL, codec: c, logs: logs}
}

// post sends body to path with the given headers and returns the status,
// the response headers and the body.
func post(t *testing.T, method, url string, body []byte, headers map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, raw
}

// payloadsJSON is the remote codec protocol's body.
func payloadsJSON(t *testing.T, ps []*commonpb.Payload) []byte {
	t.Helper()
	b, err := protojson.Marshal(&commonpb.Payloads{Payloads: ps})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parsePayloads(t *testing.T, raw []byte) []*commonpb.Payload {
	t.Helper()
	var out commonpb.Payloads
	if err := protojson.Unmarshal(raw, &out); err != nil {
		t.Fatalf("answer %s: %v", raw, err)
	}
	return out.Payloads
}

func plainPayload() *commonpb.Payload {
	return &commonpb.Payload{
		Metadata: map[string][]byte{"encoding": []byte("json/plain")},
		Data:     []byte(`{"bank_account_manager_name":"` + managerName + `"}`),
	}
}

func TestServerDecodesWhatTheCodecEncoded(t *testing.T) {
	s := startServer(t)
	enc, err := s.codec.Encode([]*commonpb.Payload{plainPayload()})
	if err != nil {
		t.Fatal(err)
	}
	status, hdr, body := post(t, http.MethodPost, s.url+"/codec/decode", payloadsJSON(t, enc),
		map[string]string{"Content-Type": "application/json", "X-Namespace": "default"})
	if status != http.StatusOK {
		t.Fatalf("decode status=%d body=%s, want 200", status, body)
	}
	if ct := hdr.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type=%q, want application/json", ct)
	}
	got := parsePayloads(t, body)
	if len(got) != 1 || !proto.Equal(got[0], plainPayload()) {
		t.Fatalf("decoded %v, want %v", got, plainPayload())
	}
}

func TestServerEncodeThenDecode(t *testing.T) {
	s := startServer(t)
	status, _, body := post(t, http.MethodPost, s.url+"/codec/encode", payloadsJSON(t, []*commonpb.Payload{plainPayload()}), nil)
	if status != http.StatusOK {
		t.Fatalf("encode status=%d body=%s", status, body)
	}
	enc := parsePayloads(t, body)
	if len(enc) != 1 || string(enc[0].Metadata["encoding"]) != EncodingEncrypted || string(enc[0].Metadata[MetadataKeyID]) != "k1" {
		t.Fatalf("encoded %v, want one payload encrypted with k1", enc)
	}
	if bytes.Contains(enc[0].Data, []byte(managerName)) {
		t.Fatalf("the encoded payload holds the plaintext")
	}
	// The codec itself reads what the endpoint encoded.
	dec, err := s.codec.Decode(enc)
	if err != nil || !proto.Equal(dec[0], plainPayload()) {
		t.Fatalf("Decode=%v, %v; want the original payload", dec, err)
	}
}

func TestServerAuth(t *testing.T) {
	s := startServer(t, "other-token", codecToken)
	enc, err := s.codec.Encode([]*commonpb.Payload{plainPayload()})
	if err != nil {
		t.Fatal(err)
	}
	body := payloadsJSON(t, enc)
	tests := []struct {
		name      string
		auth      string
		want      int
		challenge string
	}{
		{"no header", "", http.StatusUnauthorized, `Bearer realm="insuranceflow-codec"`},
		{"wrong scheme", "Basic " + codecToken, http.StatusUnauthorized, `Bearer realm="insuranceflow-codec"`},
		{"wrong token", "Bearer nope", http.StatusUnauthorized, `Bearer realm="insuranceflow-codec", error="invalid_token"`},
		{"valid token", "Bearer " + codecToken, http.StatusOK, ""},
		{"scheme in lower case", "bearer other-token", http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string]string{"Origin": uiOrigin}
			if tt.auth != "" {
				h["Authorization"] = tt.auth
			}
			status, hdr, raw := post(t, http.MethodPost, s.url+"/codec/decode", body, h)
			if status != tt.want {
				t.Fatalf("status=%d body=%s, want %d", status, raw, tt.want)
			}
			if got := hdr.Get("WWW-Authenticate"); got != tt.challenge {
				t.Fatalf("WWW-Authenticate=%q, want %q", got, tt.challenge)
			}
			if tt.want == http.StatusOK {
				if got := parsePayloads(t, raw); !proto.Equal(got[0], plainPayload()) {
					t.Fatalf("decoded %v, want the plaintext payload", got)
				}
				return
			}
			// A refused call learns nothing about the payloads, and the
			// UI can still read why (CORS headers on the 401).
			if bytes.Contains(raw, []byte(managerName)) {
				t.Fatalf("the 401 body holds the plaintext: %s", raw)
			}
			if got := hdr.Get("Access-Control-Allow-Origin"); got != uiOrigin {
				t.Fatalf("Access-Control-Allow-Origin on 401=%q, want %q", got, uiOrigin)
			}
			var e struct{ Error struct{ Code string } }
			if err := json.Unmarshal(raw, &e); err != nil || e.Error.Code != "unauthorized" {
				t.Fatalf("body=%s, want error code unauthorized", raw)
			}
		})
	}
	if strings.Contains(s.logs.String(), codecToken) {
		t.Fatalf("the logs contain the token:\n%s", s.logs.String())
	}
}

func TestServerCORS(t *testing.T) {
	s := startServer(t, codecToken)
	preflight := func(origin string) (int, http.Header) {
		status, hdr, _ := post(t, http.MethodOptions, s.url+"/codec/decode", nil, map[string]string{
			"Origin":                         origin,
			"Access-Control-Request-Method":  "POST",
			"Access-Control-Request-Headers": "content-type,authorization,x-namespace",
		})
		return status, hdr
	}
	t.Run("preflight from the UI", func(t *testing.T) {
		// No token: browsers never send one with a preflight.
		for _, origin := range DefaultCORSOrigins {
			status, hdr := preflight(origin)
			if status != http.StatusNoContent {
				t.Fatalf("%s: status=%d, want 204", origin, status)
			}
			want := map[string]string{
				"Access-Control-Allow-Origin":      origin,
				"Access-Control-Allow-Credentials": "true",
				"Access-Control-Allow-Methods":     "POST, OPTIONS",
				"Access-Control-Allow-Headers":     "Content-Type, Authorization, X-Namespace",
				"Access-Control-Max-Age":           "600",
			}
			for k, v := range want {
				if got := hdr.Get(k); got != v {
					t.Fatalf("%s: %s=%q, want %q", origin, k, got, v)
				}
			}
		}
	})
	t.Run("preflight from another origin", func(t *testing.T) {
		status, hdr := preflight("http://evil.example")
		if status != http.StatusForbidden {
			t.Fatalf("status=%d, want 403", status)
		}
		for _, k := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Allow-Headers"} {
			if got := hdr.Get(k); got != "" {
				t.Fatalf("%s=%q, want none for a foreign origin", k, got)
			}
		}
	})
	t.Run("POST from another origin", func(t *testing.T) {
		enc, _ := s.codec.Encode([]*commonpb.Payload{plainPayload()})
		status, hdr, raw := post(t, http.MethodPost, s.url+"/codec/decode", payloadsJSON(t, enc), map[string]string{
			"Origin": "http://evil.example", "Authorization": "Bearer " + codecToken,
		})
		if status != http.StatusForbidden || hdr.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("status=%d ACAO=%q, want 403 and none", status, hdr.Get("Access-Control-Allow-Origin"))
		}
		if bytes.Contains(raw, []byte(managerName)) {
			t.Fatalf("a foreign origin got the plaintext")
		}
	})
	t.Run("POST from the UI", func(t *testing.T) {
		enc, _ := s.codec.Encode([]*commonpb.Payload{plainPayload()})
		status, hdr, raw := post(t, http.MethodPost, s.url+"/codec/decode", payloadsJSON(t, enc), map[string]string{
			"Origin": "http://127.0.0.1:8233", "Authorization": "Bearer " + codecToken,
		})
		if status != http.StatusOK {
			t.Fatalf("status=%d body=%s, want 200", status, raw)
		}
		if hdr.Get("Access-Control-Allow-Origin") != "http://127.0.0.1:8233" || hdr.Get("Access-Control-Allow-Credentials") != "true" {
			t.Fatalf("CORS headers %v, want the UI's origin with credentials", hdr)
		}
	})
}

func TestServerRejectsBadRequests(t *testing.T) {
	s := startServer(t)
	tests := []struct {
		name   string
		method string
		path   string
		body   []byte
		want   int
	}{
		{"unknown path", http.MethodPost, "/codec/other", []byte(`{}`), http.StatusNotFound},
		{"GET decode", http.MethodGet, "/codec/decode", nil, http.StatusMethodNotAllowed},
		{"not JSON", http.MethodPost, "/codec/decode", []byte(`payloads please`), http.StatusBadRequest},
		{"too large", http.MethodPost, "/codec/decode", bytes.Repeat([]byte(" "), 64<<10+1), http.StatusRequestEntityTooLarge},
		{"unknown key", http.MethodPost, "/codec/decode", []byte(`{"payloads":[{"metadata":{"encoding":"YmluYXJ5L2VuY3J5cHRlZA==","encryption-key-id":"Z29uZQ=="},"data":"AAAA"}]}`), http.StatusBadRequest},
		{"outside the codec", http.MethodPost, "/v1/insurance-results", []byte(`{}`), http.StatusTeapot},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, hdr, raw := post(t, tt.method, s.url+tt.path, tt.body, nil)
			if status != tt.want {
				t.Fatalf("status=%d body=%s, want %d", status, raw, tt.want)
			}
			if tt.want == http.StatusMethodNotAllowed && hdr.Get("Allow") != "POST, OPTIONS" {
				t.Fatalf("Allow=%q, want POST, OPTIONS", hdr.Get("Allow"))
			}
			if tt.name == "unknown key" && !strings.Contains(string(raw), `payload encrypted with key "gone"`) {
				t.Fatalf("body=%s, want the unknown key named", raw)
			}
		})
	}
}

func TestNewServerConfig(t *testing.T) {
	c := mustCodec(t, mustKey(t, "k1", 1))
	tests := []struct {
		name string
		cfg  ServerConfig
		want string
	}{
		{"no codec", ServerConfig{}, "codec server Codec: is required"},
		{"wildcard origin", ServerConfig{Codec: c, AllowedOrigins: []string{"*"}},
			`codec server AllowedOrigins: "*" is not allowed; list the Temporal UI's origins, e.g. http://localhost:8233`},
		{"origin with a path", ServerConfig{Codec: c, AllowedOrigins: []string{"http://ui.example/app"}},
			`codec server AllowedOrigins: "http://ui.example/app" must be scheme://host[:port] only, as a browser sends it`},
		{"origin without scheme", ServerConfig{Codec: c, AllowedOrigins: []string{"localhost:8233"}},
			`codec server AllowedOrigins: "localhost:8233" must start with http:// or https://`},
		{"empty token", ServerConfig{Codec: c, Tokens: []string{"secret-one", " "}},
			"codec server Tokens: token 2 is empty"},
		{"negative body limit", ServerConfig{Codec: c, MaxBodyBytes: -1},
			"codec server MaxBodyBytes: -1 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewServer(tt.cfg)
			var ce *ConfigError
			if !errors.As(err, &ce) || err.Error() != tt.want {
				t.Fatalf("err=%v, want ConfigError %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "secret-one") {
				t.Fatalf("the error quotes a token: %v", err)
			}
		})
	}
}

func TestParseOrigins(t *testing.T) {
	got, err := ParseOrigins(" http://localhost:8233, https://temporal.example.com ,,")
	if err != nil {
		t.Fatalf("ParseOrigins: %v", err)
	}
	if strings.Join(got, "|") != "http://localhost:8233|https://temporal.example.com" {
		t.Fatalf("origins=%q", got)
	}
	if _, err := ParseOrigins("http://localhost:8233,http://ui.example/"); err == nil ||
		err.Error() != `codec server AllowedOrigins: "http://ui.example/" must not end with a slash (browsers send the origin without one)` {
		t.Fatalf("err=%v, want the trailing slash refused", err)
	}
}
