package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The Standard Webhooks libraries' published test vector.
const (
	vectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTS     = 1614265330
	vectorBody   = `{"test": 2432232314}`
	vectorSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestNotifyVerify(t *testing.T) {
	at := func() time.Time { return time.Unix(vectorTS+30, 0) }
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte(vectorSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := func(extra ...string) []string {
		return append([]string{"notify", "verify", "--id", vectorID, "--timestamp", fmt.Sprint(vectorTS), "--signature", vectorSig}, extra...)
	}
	for _, tc := range []struct {
		name   string
		c      cli
		args   []string
		code   exitCode
		stdout string
		stderr string
	}{
		{"vector, secret from env", cli{backends: &fakeBackends{}, stdin: vectorBody, now: at, env: map[string]string{"NOTIFY_SECRET": vectorSecret}}, args(),
			exitOK, "verified: " + vectorID, ""},
		{"vector, secret file flag", cli{backends: &fakeBackends{}, stdin: vectorBody, now: at}, args("--secret-file", secretFile),
			exitOK, "verified: " + vectorID, ""},
		{"vector, secret file env", cli{backends: &fakeBackends{}, stdin: vectorBody, now: at, env: map[string]string{"NOTIFY_SECRET_FILE": secretFile}}, args("--json"),
			exitOK, `"verified": true`, ""},
		{"body changed", cli{backends: &fakeBackends{}, stdin: `{"test": 2432232315}`, now: at, env: map[string]string{"NOTIFY_SECRET": vectorSecret}}, args(),
			exitUnverified, "", "not verified: bad_signature"},
		{"stale", cli{backends: &fakeBackends{}, stdin: vectorBody, now: func() time.Time { return time.Unix(vectorTS+600, 0) }, env: map[string]string{"NOTIFY_SECRET": vectorSecret}}, args(),
			exitUnverified, "", "not verified: stale_timestamp"},
		{"no signature", cli{backends: &fakeBackends{}, stdin: vectorBody, now: at, env: map[string]string{"NOTIFY_SECRET": vectorSecret}},
			[]string{"notify", "verify", "--id", vectorID, "--timestamp", fmt.Sprint(vectorTS)},
			exitUnverified, "", "webhook-signature is missing"},
		{"no secret", cli{backends: &fakeBackends{}, stdin: vectorBody, now: at}, args(), exitBadInput, "", "NOTIFY_SECRET: no webhook secret given"},
		{"malformed secret", cli{backends: &fakeBackends{}, stdin: vectorBody, now: at, env: map[string]string{"NOTIFY_SECRET": "hunter2-not-a-whsec"}}, args(),
			exitBadInput, "", "NOTIFY_SECRET: webhook secret does not start with whsec_"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := tc.c.run(t, tc.args...)
			if res.code != tc.code || !strings.Contains(res.stdout, tc.stdout) || !strings.Contains(res.stderr, tc.stderr) {
				t.Fatalf("exit=%d stdout=%q stderr=%q; want exit %d, stdout with %q, stderr with %q",
					res.code, res.stdout, res.stderr, tc.code, tc.stdout, tc.stderr)
			}
			if strings.Contains(res.stdout+res.stderr, "hunter2") || strings.Contains(res.stdout+res.stderr, "MfKQ9r8G") {
				t.Fatalf("output shows the secret: %s %s", res.stdout, res.stderr)
			}
		})
	}
}
