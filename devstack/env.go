package devstack

import (
	"slices"
	"strings"
)

// inheritedNames are the only variables a stack's processes take from the
// caller's environment: what any program needs to run (PATH, HOME, the
// user, the locale, the temporary directory, TLS roots) and what Go's
// runtime and coverage tooling read. Everything else a process sees is the
// stack's own setting, given explicitly. Without this, whatever the caller
// happens to export — PAYLOAD_KEYS_FILE or TOP_QPS left from a `make dev`
// session, a TOPSIM_* fault rate — would silently change what the stack
// runs, and a benchmark or chaos figure would describe a different system.
func inheritedNames() []string {
	return []string{
		"PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "LANG", "LC_ALL", "TZ",
		"SSL_CERT_FILE", "SSL_CERT_DIR",
		"GOCOVERDIR", "GORACE", "GOTRACEBACK",
	}
}

// inheritedEnv keeps the allow-listed variables of environ (os.Environ's
// KEY=VALUE form).
func inheritedEnv(environ []string) []string {
	allowed := inheritedNames()
	var out []string
	for _, kv := range environ {
		if k, _, ok := strings.Cut(kv, "="); ok && slices.Contains(allowed, k) {
			out = append(out, kv)
		}
	}
	return out
}

// envNames are the variable names of a KEY=VALUE list.
func envNames(env []string) []string {
	names := make([]string, 0, len(env))
	for _, kv := range env {
		if k, _, ok := strings.Cut(kv, "="); ok {
			names = append(names, k)
		}
	}
	return names
}

// lastValue is the value the last KEY= entry of env gives key, as exec
// does when a name repeats, and whether there is one.
func lastValue(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v, true
		}
	}
	return "", false
}
