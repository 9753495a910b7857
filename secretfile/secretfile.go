// Package secretfile reads secrets from files — the one way every
// insuranceflow program takes a secret that is too long or too sensitive
// for an environment variable (TOP_APP_SECRET_FILE, INGRESS_CLIENTS_FILE,
// CODEC_AUTH_TOKENS_FILE, DATABASE_URL_FILE, PAYLOAD_KEYS_FILE) — and warns
// when such a file is readable by more than its owner.
package secretfile

import (
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// ModeWarning says a secret file can be read by its group or by others.
// It is a warning, not an error: a Kubernetes Secret volume or a compose
// secret may be mounted so on purpose, but usually it is a mistake.
type ModeWarning struct {
	Path string
	Mode fs.FileMode
}

func (w *ModeWarning) Error() string {
	return fmt.Sprintf("secret file %s is readable by its group or others (mode %04o); make it readable by the service's user only: chown 10001 %s && chmod 400 %s",
		w.Path, w.Mode.Perm(), w.Path, w.Path)
}

// EmptyError is a secret file with nothing in it.
type EmptyError struct{ Path string }

func (e *EmptyError) Error() string { return "file " + e.Path + " is empty" }

// CheckMode returns a *ModeWarning when path is group- or world-readable,
// and nil otherwise (also when it cannot be inspected: reading it will say
// why).
func CheckMode(path string) *ModeWarning {
	fi, err := os.Stat(path)
	if err != nil {
		return nil
	}
	if fi.Mode().Perm()&0o044 != 0 {
		return &ModeWarning{Path: path, Mode: fi.Mode()}
	}
	return nil
}

// Read returns the file's content without the line ending an editor or
// echo adds, which is never part of the secret, and a warning when the
// file is readable by more than its owner. An empty file is an error.
func Read(path string) (string, *ModeWarning, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		// os's error names the path and the reason, never the content.
		return "", nil, err
	}
	value := strings.TrimRight(string(b), "\r\n")
	if strings.TrimSpace(value) == "" {
		return "", nil, &EmptyError{Path: path}
	}
	return value, CheckMode(path), nil
}
