package codec

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxKeyFileSize bounds what LoadKeyFile reads: a key file is a few lines,
// and anything much larger is the wrong file.
const maxKeyFileSize = 64 << 10

// KeyFileError is one unusable line of a key file, or a problem with the
// whole file (Line 0). Problem never quotes the line: it may hold key
// material.
type KeyFileError struct {
	Path    string // "" when the keys came from a reader
	Line    int    // 1-based; 0 for the whole file
	Problem string
}

func (e *KeyFileError) Error() string {
	where := "key file"
	if e.Path != "" {
		where += " " + e.Path
	}
	if e.Line > 0 {
		where += fmt.Sprintf(" line %d", e.Line)
	}
	return where + ": " + e.Problem
}

// LoadKeyFile reads the key file at path (see ParseKeys) and returns a
// Codec holding its keys.
func LoadKeyFile(path string) (*Codec, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read key file %s: %w", path, err)
	}
	if len(data) > maxKeyFileSize {
		return nil, &KeyFileError{Path: path, Problem: fmt.Sprintf("is larger than %d bytes; is it the right file?", maxKeyFileSize)}
	}
	keys, err := parseKeys(path, data)
	if err != nil {
		return nil, err
	}
	return New(keys...)
}

// ParseKeys reads a key file: one key per line, as
//
//	key-id:base64-key
//
// where the key is 32 random bytes in standard base64 (what
// `head -c32 /dev/urandom | base64` prints) and the id is letters, digits,
// '.', '_' and '-'. Blank lines and lines starting with '#' are skipped.
// The first key encrypts; the others only decrypt, which is how a key is
// rotated: put the new key first and keep the old ones after it for as
// long as histories hold payloads they encrypted.
//
// Every bad line is reported, each as a *KeyFileError naming its line
// number (joined with errors.Join).
func ParseKeys(r io.Reader) ([]Key, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read keys: %w", err)
	}
	return parseKeys("", data)
}

func parseKeys(path string, data []byte) ([]Key, error) {
	var (
		keys   []Key
		errs   []error
		seenAt = map[string]int{} // key id -> line
	)
	bad := func(line int, format string, args ...any) {
		errs = append(errs, &KeyFileError{Path: path, Line: line, Problem: fmt.Sprintf(format, args...)})
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, encoded, ok := strings.Cut(line, ":")
		if !ok {
			bad(n, "want key-id:base64-key, found no colon")
			continue
		}
		id, encoded = strings.TrimSpace(id), strings.TrimSpace(encoded)
		if err := checkKeyID(id); err != nil {
			bad(n, "%v", err)
			continue
		}
		if first, dup := seenAt[id]; dup {
			bad(n, "key id %q is already defined on line %d", id, first)
			continue
		}
		seenAt[id] = n
		material, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil {
			// base64's own error gives only an offset, but say what we
			// expect rather than echo anything of the value.
			bad(n, "key %q is not valid standard base64 (generate one with: head -c32 /dev/urandom | base64)", id)
			continue
		}
		k, err := NewKey(id, material)
		if err != nil {
			bad(n, "%v", err)
			continue
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		// Only a line over the scanner's 64 KiB limit gets here.
		return nil, &KeyFileError{Path: path, Problem: "a line is too long to be a key"}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(keys) == 0 {
		return nil, &KeyFileError{Path: path, Problem: "holds no keys (want lines of key-id:base64-key; the first encrypts)"}
	}
	return keys, nil
}
