package secretfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	private := filepath.Join(dir, "private")
	if err := os.WriteFile(private, []byte("s3cret\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	v, warn, err := Read(private)
	if err != nil || v != "s3cret" || warn != nil {
		t.Fatalf("Read(0400)=%q,%v,%v, want s3cret without a warning", v, warn, err)
	}

	shared := filepath.Join(dir, "shared")
	if err := os.WriteFile(shared, []byte("s3cret\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o644); err != nil { // past the umask
		t.Fatal(err)
	}
	v, warn, err = Read(shared)
	if err != nil || v != "s3cret" {
		t.Fatalf("Read(0644)=%q,%v", v, err)
	}
	if warn == nil || warn.Path != shared {
		t.Fatalf("warning=%v, want one naming %s", warn, shared)
	}
	if msg := warn.Error(); !strings.Contains(msg, "mode 0644") || !strings.Contains(msg, "chown 10001 "+shared) || !strings.Contains(msg, "chmod 400 "+shared) || strings.Contains(msg, "s3cret") {
		t.Fatalf("warning text %q", msg)
	}

	group := filepath.Join(dir, "group")
	if err := os.WriteFile(group, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(group, 0o640); err != nil {
		t.Fatal(err)
	}
	if CheckMode(group) == nil {
		t.Fatal("0640 gave no warning")
	}

	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	var eerr *EmptyError
	if _, _, err := Read(empty); !errors.As(err, &eerr) || eerr.Path != empty {
		t.Fatalf("empty file: err=%v", err)
	}
	if _, _, err := Read(filepath.Join(dir, "absent")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("absent file: err=%v", err)
	}
}
