package codec

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func b64(seed byte) string { return base64.StdEncoding.EncodeToString(material(seed)) }

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "payload-keys")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestParseKeys(t *testing.T) {
	file := "# payload keys: the first encrypts\r\n" +
		"\n" +
		"  2025-06 : " + b64(100) + "  \r\n" +
		"   # retired, still decrypts\n" +
		"2024-01:" + b64(1) + "\n"
	keys, err := ParseKeys(strings.NewReader(file))
	if err != nil {
		t.Fatalf("ParseKeys: %v", err)
	}
	var ids []string
	for _, k := range keys {
		ids = append(ids, k.ID)
	}
	if got := strings.Join(ids, ","); got != "2025-06,2024-01" {
		t.Fatalf("ids=%s, want 2025-06,2024-01", got)
	}
	if string(keys[0].material) != string(material(100)) || string(keys[1].material) != string(material(1)) {
		t.Fatalf("key material was not decoded as written")
	}
}

func TestParseKeysErrors(t *testing.T) {
	short := base64.StdEncoding.EncodeToString(material(7)[:16])
	good := b64(1)
	tests := []struct {
		name    string
		file    string
		secrets []string // parts of the file that must not appear in the error
		want    []string // the error's lines, in order
	}{
		{"bad base64", "# keys\nk1:" + good[:20] + "!!" + good[22:] + "\n",
			[]string{good[:20]},
			[]string{`key file line 2: key "k1" is not valid standard base64 (generate one with: head -c32 /dev/urandom | base64)`}},
		{"wrong length", "k1:" + short + "\n",
			[]string{short},
			[]string{`key file line 1: key "k1": key is 16 bytes, want 32 (AES-256)`}},
		{"duplicate id", "k1:" + good + "\n\nk1:" + b64(9) + "\n",
			[]string{good, b64(9)},
			[]string{`key file line 3: key id "k1" is already defined on line 1`}},
		{"missing colon", "k1:" + good + "\n" + b64(9) + "\n",
			[]string{good, b64(9)},
			[]string{`key file line 2: want key-id:base64-key, found no colon`}},
		{"empty id", ":" + good + "\n",
			[]string{good},
			[]string{`key file line 1: key id is empty`}},
		// Fields swapped: the "id" is key material and must not be echoed.
		{"swapped fields", good + ":k1\n",
			[]string{good, good[:12]},
			[]string{`key file line 1: key id may hold only letters, digits, '.', '_' and '-'`}},
		{"every bad line reported", "k1:" + short + "\nk2\nk3:" + good + "\n",
			[]string{short},
			[]string{
				`key file line 1: key "k1": key is 16 bytes, want 32 (AES-256)`,
				`key file line 2: want key-id:base64-key, found no colon`,
			}},
		{"no keys", "# nothing yet\n\n", nil,
			[]string{`key file: holds no keys (want lines of key-id:base64-key; the first encrypts)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := ParseKeys(strings.NewReader(tt.file))
			if err == nil {
				t.Fatalf("ParseKeys succeeded with %d keys", len(keys))
			}
			if got := err.Error(); got != strings.Join(tt.want, "\n") {
				t.Fatalf("error:\n%s\nwant:\n%s", got, strings.Join(tt.want, "\n"))
			}
			var kfe *KeyFileError
			if !errors.As(err, &kfe) {
				t.Fatalf("err=%T, want a *KeyFileError", err)
			}
			for _, s := range tt.secrets {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("the error quotes key material %q: %v", s, err)
				}
			}
		})
	}
}

func TestLoadKeyFile(t *testing.T) {
	t.Run("valid", func(t *testing.T) {
		c, err := LoadKeyFile(writeFile(t, "new:"+b64(100)+"\nold:"+b64(1)+"\n"))
		if err != nil {
			t.Fatalf("LoadKeyFile: %v", err)
		}
		if c.EncryptionKeyID() != "new" || strings.Join(c.KeyIDs(), ",") != "new,old" {
			t.Fatalf("codec encrypts with %s and holds %v, want new and new,old", c.EncryptionKeyID(), c.KeyIDs())
		}
	})
	t.Run("errors name the file and line", func(t *testing.T) {
		path := writeFile(t, "# header\nk1:not base64 at all\n")
		_, err := LoadKeyFile(path)
		var kfe *KeyFileError
		if !errors.As(err, &kfe) || kfe.Path != path || kfe.Line != 2 {
			t.Fatalf("err=%v, want a KeyFileError for %s line 2", err, path)
		}
		if want := "key file " + path + " line 2: "; !strings.HasPrefix(err.Error(), want) {
			t.Fatalf("err=%q, want it to start with %q", err, want)
		}
		if strings.Contains(err.Error(), "not base64 at all") {
			t.Fatalf("the error quotes the line: %v", err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "absent")
		_, err := LoadKeyFile(path)
		if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), path) {
			t.Fatalf("err=%v, want a not-exist error naming %s", err, path)
		}
	})
	t.Run("too large", func(t *testing.T) {
		path := writeFile(t, strings.Repeat("# padding\n", maxKeyFileSize/10+1))
		_, err := LoadKeyFile(path)
		var kfe *KeyFileError
		if !errors.As(err, &kfe) || !strings.Contains(err.Error(), "is larger than 65536 bytes") {
			t.Fatalf("err=%v, want a KeyFileError about the size", err)
		}
	})
}
