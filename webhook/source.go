package webhook

import (
	"errors"

	"github.com/insuranceflow/insuranceflow/secretfile"
)

// SourceError names the setting (an environment variable or flag) a secret
// came from and why it cannot be used; never the secret itself.
type SourceError struct {
	Name string // e.g. "NOTIFY_SECRET" or "NOTIFY_SECRET_FILE"
	Err  error
}

func (e *SourceError) Error() string { return e.Name + ": " + e.Err.Error() }
func (e *SourceError) Unwrap() error { return e.Err }

// ErrNoSecret is wrapped by ReadSecret when neither source is set.
var ErrNoSecret = errors.New("no webhook secret given")

// ReadSecret reads a secret given either inline (value, from the setting
// valueName) or in a file (path, from fileName), never both, and parses it.
// A file others can read is returned as a warning alongside the secret.
func ReadSecret(valueName, value, fileName, path string) (Secret, *secretfile.ModeWarning, error) {
	switch {
	case value != "" && path != "":
		return Secret{}, nil, &SourceError{Name: valueName, Err: errors.New("set it or " + fileName + ", not both")}
	case path != "":
		content, warn, err := secretfile.Read(path)
		if err != nil {
			return Secret{}, nil, &SourceError{Name: fileName, Err: err}
		}
		s, err := ParseSecret(content)
		if err != nil {
			return Secret{}, nil, &SourceError{Name: fileName, Err: err}
		}
		return s, warn, nil
	case value != "":
		s, err := ParseSecret(value)
		if err != nil {
			return Secret{}, nil, &SourceError{Name: valueName, Err: err}
		}
		return s, nil, nil
	}
	return Secret{}, nil, &SourceError{Name: valueName, Err: ErrNoSecret}
}
