package notify

import (
	"errors"
	"net/url"
)

// redactURL cuts the URL inside a *url.Error, which net/http puts in every
// transport error, down to its scheme and host: a receiver's URL may carry
// a password, or a token in its path or query, and the error goes to logs
// and to Temporal's history as the activity's failure.
func redactURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			ue.URL = (&url.URL{Scheme: u.Scheme, Host: u.Host}).String()
		} else {
			ue.URL = "(the notification URL)"
		}
	}
	return err
}
