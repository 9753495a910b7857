package temporalconn

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"

	"github.com/insuranceflow/insuranceflow/tlscerts"
)

// hermetic is an environment with no temporal.toml, so the tests never read
// the user's own profiles.
func hermetic(t *testing.T, kv ...string) Map {
	t.Helper()
	return append(Map{EnvConfigFile + "=" + filepath.Join(t.TempDir(), "absent.toml")}, kv...)
}

func TestLoadDefaultsToTheDevServer(t *testing.T) {
	c, err := Load(hermetic(t), Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Options.HostPort != DefaultAddress || c.Options.Namespace != DefaultNamespace {
		t.Fatalf("address=%q namespace=%q, want %q %q", c.Options.HostPort, c.Options.Namespace, DefaultAddress, DefaultNamespace)
	}
	if c.TLS() || c.APIKey() || c.ClientCert() {
		t.Fatalf("tls=%v api key=%v client cert=%v, want all false", c.TLS(), c.APIKey(), c.ClientCert())
	}
	if c.Profile != "default" {
		t.Fatalf("profile=%q, want default", c.Profile)
	}
}

func TestLoadEmptyVariablesMeanDefaults(t *testing.T) {
	c, err := Load(hermetic(t, EnvAddress+"=", EnvNamespace+"="), Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Options.HostPort != DefaultAddress || c.Options.Namespace != DefaultNamespace {
		t.Fatalf("address=%q namespace=%q, want the defaults", c.Options.HostPort, c.Options.Namespace)
	}
}

func TestLoadMutualTLSFromEnvironment(t *testing.T) {
	f, err := tlscerts.Generate(t.TempDir(), "temporal", "insuranceflow", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(hermetic(t,
		EnvAddress+"=temporal.internal:7233", EnvNamespace+"=insurance",
		EnvTLSCertPath+"="+f.ClientCert, EnvTLSKeyPath+"="+f.ClientKey,
		EnvTLSCAPath+"="+f.CACert, EnvTLSServerName+"=temporal",
	), Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	tc := c.Options.ConnectionOptions.TLS
	switch {
	case tc == nil:
		t.Fatal("TLS config is nil, want mutual TLS")
	case len(tc.Certificates) != 1:
		t.Fatalf("client certificates=%d, want 1", len(tc.Certificates))
	case tc.RootCAs == nil:
		t.Fatal("RootCAs is nil, want the CA file's pool")
	case tc.ServerName != "temporal":
		t.Fatalf("ServerName=%q, want temporal", tc.ServerName)
	case tc.MinVersion != tls.VersionTLS12:
		t.Fatalf("MinVersion=%x, want TLS 1.2", tc.MinVersion)
	}
	if c.Options.HostPort != "temporal.internal:7233" || c.Options.Namespace != "insurance" {
		t.Fatalf("address=%q namespace=%q", c.Options.HostPort, c.Options.Namespace)
	}
	if c.APIKey() {
		t.Fatal("API key set without TEMPORAL_API_KEY")
	}
}

func TestLoadProfileFileEnvironmentThenOverrides(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "temporal.toml")
	toml := `
[profile.default]
address = "default.example:7233"

[profile.prod]
address = "prod.example:7233"
namespace = "prod-ns"
`
	if err := os.WriteFile(file, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	env := Map{EnvConfigFile + "=" + file, EnvProfile + "=prod"}
	c, err := Load(env, Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Options.HostPort != "prod.example:7233" || c.Options.Namespace != "prod-ns" || c.Profile != "prod" {
		t.Fatalf("from profile prod: address=%q namespace=%q profile=%q", c.Options.HostPort, c.Options.Namespace, c.Profile)
	}
	// The environment wins over the file, a flag over both.
	c, err = Load(append(env, EnvNamespace+"=env-ns"), Overrides{Address: "flag.example:7233"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Options.HostPort != "flag.example:7233" || c.Options.Namespace != "env-ns" {
		t.Fatalf("with env and flag: address=%q namespace=%q", c.Options.HostPort, c.Options.Namespace)
	}
	// --profile picks another profile than TEMPORAL_PROFILE.
	c, err = Load(env, Overrides{Profile: "default"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Options.HostPort != "default.example:7233" {
		t.Fatalf("--profile default: address=%q", c.Options.HostPort)
	}
	_, err = Load(env, Overrides{Profile: "staging"})
	var cerr *Error
	if !errors.As(err, &cerr) || !strings.Contains(err.Error(), "staging") {
		t.Fatalf("unknown profile: err=%v, want an *Error naming staging", err)
	}
}

func TestLoadMissingCAFileNamesTheVariable(t *testing.T) {
	_, err := Load(hermetic(t, EnvTLSCAPath+"=/nonexistent/ca.pem"), Overrides{})
	var cerr *Error
	if !errors.As(err, &cerr) || cerr.Setting != EnvTLSCAPath {
		t.Fatalf("err=%v, want an *Error for %s", err, EnvTLSCAPath)
	}
}

// TestAPIKeyIsSentAsCredentialsOverTLS is what Temporal Cloud needs: with
// only TEMPORAL_API_KEY set the options turn TLS on, and a real gRPC
// server, serving TLS only, receives the key as "authorization: Bearer".
func TestAPIKeyIsSentAsCredentialsOverTLS(t *testing.T) {
	const key = "tc-api-key-0123456789"
	c, err := Load(hermetic(t, EnvAPIKey+"="+key, EnvAddress+"=ns.acct.tmprl.cloud:7233"), Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if !c.TLS() || !c.APIKey() || c.ClientCert() {
		t.Fatalf("tls=%v api key=%v client cert=%v, want TLS and a key, no certificate", c.TLS(), c.APIKey(), c.ClientCert())
	}
	if !c.Cloud() {
		t.Fatal("Cloud()=false for a tmprl.cloud address")
	}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("start", "temporal", c)
	if strings.Contains(logged.String(), key) || !strings.Contains(logged.String(), "api_key_set=true") {
		t.Fatalf("log line %q: want api_key_set=true and never the key", logged.String())
	}

	// The same, dialled for real against a TLS server trusting nothing
	// else: the CA is the only difference to Cloud's public certificate.
	f, err := tlscerts.Generate(t.TempDir(), "localhost", "unused", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	srv := startTLSServer(t, f)
	c, err = Load(hermetic(t, EnvAPIKey+"="+key, EnvAddress+"="+srv.addr, EnvTLSCAPath+"="+f.CACert), Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tc, err := client.DialContext(ctx, c.Options)
	if err != nil {
		t.Fatalf("dial over TLS with the API key: %v", err)
	}
	tc.Close()
	if got := srv.authorization(); got != "Bearer "+key {
		t.Fatalf("server saw authorization %q, want %q", got, "Bearer "+key)
	}
}

type tlsServer struct {
	addr string
	mu   sync.Mutex
	auth string
}

func (s *tlsServer) authorization() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.auth
}

// fakeFrontend answers GetSystemInfo, the one call a client makes on dial.
type fakeFrontend struct {
	workflowservice.UnimplementedWorkflowServiceServer
}

func (fakeFrontend) GetSystemInfo(context.Context, *workflowservice.GetSystemInfoRequest) (*workflowservice.GetSystemInfoResponse, error) {
	return &workflowservice.GetSystemInfoResponse{ServerVersion: "test"}, nil
}

func startTLSServer(t *testing.T, f tlscerts.Files) *tlsServer {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(f.ServerCert, f.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	s := &tlsServer{}
	s.addr = serveFrontend(t,
		grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get("authorization")) > 0 {
				s.mu.Lock()
				s.auth = md.Get("authorization")[0]
				s.mu.Unlock()
			}
			return h(ctx, req)
		}),
	)
	return s
}

// serveFrontend serves fakeFrontend with opts on a loopback port until the
// test ends, and returns its address.
func serveFrontend(t *testing.T, opts ...grpc.ServerOption) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(opts...)
	workflowservice.RegisterWorkflowServiceServer(g, fakeFrontend{})
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	return ln.Addr().String()
}

func TestFilterKeepsTemporalVariables(t *testing.T) {
	got := Filter([]string{"PATH=/bin", "TEMPORAL_ADDRESS=a:1", "TEMPORAL_TLS_CLIENT_CERT_PATH=/c", "HOME=/root"})
	if strings.Join(got, " ") != "TEMPORAL_ADDRESS=a:1 TEMPORAL_TLS_CLIENT_CERT_PATH=/c" {
		t.Fatalf("Filter=%q", got)
	}
}

// TestGRPCCompression dials a real gRPC server with each setting and reads
// the encoding of the request it received: the SDK gzips by default, "none"
// sends plain protobuf, and anything else is refused naming the variable.
func TestGRPCCompression(t *testing.T) {
	srv := startRecordingServer(t)
	for _, tc := range []struct{ setting, want string }{
		{"", "gzip"},
		{"gzip", "gzip"},
		{"none", ""},
		{"NONE", ""},
	} {
		c, err := Load(hermetic(t, EnvAddress+"="+srv.addr, EnvGRPCCompression+"="+tc.setting), Overrides{})
		if err != nil {
			t.Fatalf("%s=%q: %v", EnvGRPCCompression, tc.setting, err)
		}
		if got := c.Compression(); got != cmp.Or(tc.want, CompressionNone) {
			t.Errorf("%s=%q: Compression()=%q", EnvGRPCCompression, tc.setting, got)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		tc2, err := client.DialContext(ctx, c.Options)
		cancel()
		if err != nil {
			t.Fatalf("%s=%q: dial: %v", EnvGRPCCompression, tc.setting, err)
		}
		tc2.Close()
		if got := srv.lastEncoding(); got != tc.want {
			t.Errorf("%s=%q: the server received grpc-encoding %q, want %q", EnvGRPCCompression, tc.setting, got, tc.want)
		}
	}

	_, err := Load(hermetic(t, EnvGRPCCompression+"=zstd"), Overrides{})
	var cerr *Error
	if !errors.As(err, &cerr) || cerr.Setting != EnvGRPCCompression || !strings.Contains(err.Error(), `"zstd"`) {
		t.Fatalf("err=%v, want an *Error for %s naming the value", err, EnvGRPCCompression)
	}
}

// recordingServer is a plaintext frontend that notes each request's
// compression as gRPC's stats report it.
type recordingServer struct {
	addr     string
	mu       sync.Mutex
	encoding string
}

func (s *recordingServer) lastEncoding() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.encoding
}

func (s *recordingServer) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return ctx
}
func (s *recordingServer) HandleRPC(_ context.Context, st stats.RPCStats) {
	if h, ok := st.(*stats.InHeader); ok {
		s.mu.Lock()
		s.encoding = h.Compression
		s.mu.Unlock()
	}
}
func (s *recordingServer) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (s *recordingServer) HandleConn(context.Context, stats.ConnStats) {}

func startRecordingServer(t *testing.T) *recordingServer {
	t.Helper()
	s := &recordingServer{}
	s.addr = serveFrontend(t, grpc.StatsHandler(s))
	return s
}
