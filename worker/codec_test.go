package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// serveIngress runs serve (ingress only) against a fake frontend with the
// extra environment and returns the ingress URL and the config it used.
func serveIngress(t *testing.T, extra ...string) (string, config) {
	t.Helper()
	addr := startFrontend(t, &frontend{attributes: allKeywords()})
	cfg, err := parseConfig([]string{"--no-worker"}, env(with(map[string]string{
		"TEMPORAL_ADDRESS": addr,
		"DATABASE_URL":     "sqlite://" + filepath.Join(t.TempDir(), "flow.db"),
		"HTTP_ADDR":        "127.0.0.1:0",
		"INGRESS_TOKENS":   ingressToken,
		"LOG_FORMAT":       "json",
	}, extra...)), io.Discard)
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	logs := &logSink{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, newLogger(cfg, logs), noOTel) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("serve did not stop")
		}
		for _, secret := range []string{codecToken, newKeyB64} {
			if strings.Contains(logs.String(), secret) {
				t.Errorf("the logs contain a secret: %s", logs.String())
			}
		}
	})
	return waitForURL(t, logs, done), cfg
}

func postCodec(t *testing.T, url string, body []byte, auth string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

func TestServeCodecEndpoint(t *testing.T) {
	plain := &commonpb.Payload{
		Metadata: map[string][]byte{"encoding": []byte("json/plain")},
		Data:     []byte(`{"bank_account_manager_name":"王小丫"}`),
	}

	t.Run("served with a key file", func(t *testing.T) {
		keys := payloadKeyFile(t, "new:"+newKeyB64)
		base, cfg := serveIngress(t, "PAYLOAD_KEYS_FILE", keys, "CODEC_AUTH_TOKENS", codecToken, "CODEC_ADDR", "ingress")
		enc, err := cfg.Codec.Encode([]*commonpb.Payload{plain})
		if err != nil {
			t.Fatal(err)
		}
		body, err := protojson.Marshal(&commonpb.Payloads{Payloads: enc})
		if err != nil {
			t.Fatal(err)
		}
		if status, raw := postCodec(t, base+"/codec/decode", body, ""); status != http.StatusUnauthorized {
			t.Fatalf("decode without a token: status=%d body=%s, want 401", status, raw)
		}
		if status, raw := postCodec(t, base+"/codec/decode", body, ingressToken); status != http.StatusUnauthorized {
			t.Fatalf("decode with the ingress's token: status=%d body=%s, want 401 (the codec has its own)", status, raw)
		}
		status, raw := postCodec(t, base+"/codec/decode", body, codecToken)
		if status != http.StatusOK {
			t.Fatalf("decode: status=%d body=%s, want 200", status, raw)
		}
		var out commonpb.Payloads
		if err := protojson.Unmarshal(raw, &out); err != nil {
			t.Fatalf("decode answer %s: %v", raw, err)
		}
		if len(out.Payloads) != 1 || !proto.Equal(out.Payloads[0], plain) {
			t.Fatalf("decoded %v, want %v", out.Payloads, plain)
		}
		// The ingress still answers beside it.
		if status, _ := postCodec(t, base+"/v1/insurance-results", []byte(`{}`), ""); status != http.StatusUnauthorized {
			t.Fatalf("ingress without a token: status=%d, want 401", status)
		}
	})

	t.Run("absent without a key file", func(t *testing.T) {
		base, cfg := serveIngress(t, "CODEC_AUTH_TOKENS", codecToken)
		if cfg.Codec != nil {
			t.Fatalf("codec configured without PAYLOAD_KEYS_FILE")
		}
		status, raw := postCodec(t, base+"/codec/decode", []byte(`{"payloads":[]}`), codecToken)
		if status != http.StatusNotFound || !strings.Contains(string(raw), `"not_found"`) {
			t.Fatalf("decode without a key file: status=%d body=%s, want the ingress's 404", status, raw)
		}
	})
}

func TestCodecIsNeverAnOpenOracle(t *testing.T) {
	keys := payloadKeyFile(t, "new:"+newKeyB64)
	base := with(minimal(), "PAYLOAD_KEYS_FILE", keys)
	refused := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"on the ingress without tokens", with(base, "CODEC_ADDR", "ingress"), "CODEC_ADDR: the codec endpoint on the ingress's listener needs CODEC_AUTH_TOKENS"},
		{"on every interface without tokens", with(base, "CODEC_ADDR", "0.0.0.0:8089"), "CODEC_ADDR: 0.0.0.0:8089 is reachable beyond this host"},
		{"empty host without tokens", with(base, "CODEC_ADDR", ":8089"), "CODEC_ADDR: :8089 is reachable beyond this host"},
		{"a LAN address without tokens", with(base, "CODEC_ADDR", "10.1.2.3:8089"), "CODEC_ADDR: 10.1.2.3:8089 is reachable beyond this host"},
		{"require encryption without keys", with(minimal(), "PAYLOAD_REQUIRE_ENCRYPTION", "true"), "PAYLOAD_REQUIRE_ENCRYPTION: needs PAYLOAD_KEYS_FILE"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, nil, tt.env)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err=%v, want %q", err, tt.want)
			}
		})
	}
	allowed := []struct {
		name      string
		env       map[string]string
		onIngress bool
		addr      string
	}{
		{"default: its own loopback listener", base, false, "127.0.0.1:8089"},
		{"localhost", with(base, "CODEC_ADDR", "localhost:9000"), false, "localhost:9000"},
		{"every interface with tokens", with(base, "CODEC_ADDR", "0.0.0.0:8089", "CODEC_AUTH_TOKENS", codecToken), false, "0.0.0.0:8089"},
		{"the ingress with tokens", with(base, "CODEC_ADDR", "ingress", "CODEC_AUTH_TOKENS", codecToken), true, ""},
	}
	for _, tt := range allowed {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parse(t, nil, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.CodecOnIngress != tt.onIngress || cfg.CodecAddr != tt.addr {
				t.Fatalf("on ingress=%v addr=%q, want %v %q", cfg.CodecOnIngress, cfg.CodecAddr, tt.onIngress, tt.addr)
			}
		})
	}
	t.Run("tokens from a file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "codec_tokens")
		if err := os.WriteFile(file, []byte("# operators\n"+codecToken+"\nsecond-codec-token\n"), 0o400); err != nil {
			t.Fatal(err)
		}
		cfg, err := parse(t, nil, with(base, "CODEC_ADDR", "ingress", "CODEC_AUTH_TOKENS_FILE", file))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(cfg.codecTokens(), ","); got != codecToken+",second-codec-token" {
			t.Fatalf("tokens=%q", got)
		}
	})
	t.Run("the codec on its own loopback listener, not on the ingress", func(t *testing.T) {
		port := freePort(t)
		base, _ := serveIngress(t, "PAYLOAD_KEYS_FILE", keys, "CODEC_ADDR", "127.0.0.1:"+port)
		if status, raw := postCodec(t, base+"/codec/decode", []byte(`{"payloads":[]}`), ""); status != http.StatusNotFound {
			t.Fatalf("/codec on the ingress: status=%d body=%s, want 404", status, raw)
		}
		status, raw := postCodec(t, "http://127.0.0.1:"+port+"/codec/decode", []byte(`{"payloads":[]}`), "")
		if status != http.StatusOK {
			t.Fatalf("/codec on its loopback listener: status=%d body=%s, want 200", status, raw)
		}
	})
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}
