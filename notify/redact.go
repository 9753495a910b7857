package notify

import (
	"errors"
	"net/url"
)

// redactURL strips a password from the URL inside a *url.Error, which
// net/http puts in every transport error.
func redactURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			ue.URL = u.Redacted()
		}
	}
	return err
}
