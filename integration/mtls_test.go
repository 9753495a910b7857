//go:build cluster

// These tests run only with `make test-cluster` (go test -tags cluster),
// where the stack's Temporal server requires mutual TLS: they check the
// other side of that, that a client without a certificate is refused.
// Without the tag they are not compiled, rather than skipped.
package integration

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/insuranceflow/insuranceflow/temporalconn"
)

// withoutClientCert is the stack's Temporal environment less the client
// certificate: the server is still trusted, the client just has nothing to
// show.
func withoutClientCert(t *testing.T) []string {
	t.Helper()
	var out []string
	var hadCert bool
	for _, kv := range env.TemporalEnv() {
		if strings.HasPrefix(kv, temporalconn.EnvTLSCertPath+"=") || strings.HasPrefix(kv, temporalconn.EnvTLSKeyPath+"=") {
			hadCert = true
			continue
		}
		out = append(out, kv)
	}
	if !hadCert {
		t.Fatalf("the cluster stack has no client certificate in %q: is `make test-cluster` running with mutual TLS?", env.TemporalEnv())
	}
	return out
}

func TestClusterRequiresClientCertificate(t *testing.T) {
	t.Run("the SDK client with the certificate connects", func(t *testing.T) {
		opts, err := env.ClientOptions()
		if err != nil {
			t.Fatal(err)
		}
		if tc := opts.ConnectionOptions.TLS; tc == nil || len(tc.Certificates) != 1 {
			t.Fatalf("the stack's options have no client certificate: %+v", tc)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := client.DialContext(ctx, opts)
		if err != nil {
			t.Fatalf("dial with the client certificate: %v", err)
		}
		defer c.Close()
		if _, err := c.CheckHealth(ctx, nil); err != nil {
			t.Fatalf("health over mutual TLS: %v", err)
		}
	})
	t.Run("the SDK client without a certificate is refused", func(t *testing.T) {
		conn, err := temporalconn.Load(temporalconn.Map(withoutClientCert(t)), temporalconn.Overrides{})
		if err != nil {
			t.Fatal(err)
		}
		if !conn.TLS() || conn.ClientCert() {
			t.Fatalf("tls=%v client cert=%v, want TLS without a certificate", conn.TLS(), conn.ClientCert())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		c, err := client.DialContext(ctx, conn.Options)
		if err == nil {
			_, err = c.CheckHealth(ctx, nil)
			c.Close()
		}
		if err == nil {
			t.Fatal("a client without a certificate was let in")
		}
	})
	t.Run("the starter with the certificate lists, without it exits unavailable", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := env.Starter(ctx, "--json", "list").CombinedOutput()
		if err != nil {
			t.Fatalf("starter list over mutual TLS: %v\n%s", err, out)
		}
		cmd := exec.CommandContext(ctx, env.BinPath("starter"), "--timeout", "10s", "list")
		cmd.Env = append(withoutClientCert(t), "DATABASE_URL="+env.DatabaseURL, "PATH=/usr/bin:/bin")
		out, err = cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 4 {
			t.Fatalf("starter list without a certificate: err=%v, want exit 4 (unavailable)\n%s", err, out)
		}
	})
}
