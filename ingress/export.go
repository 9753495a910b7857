package ingress

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/store"
)

// Page sizes of GET /v1/events.
const (
	defaultEventsPage = 1000
	maxEventsPage     = 10000
)

// eventsParams are the query parameters GET /v1/events understands.
var eventsParams = []string{"since", "until", "callback", "page_size", "page_token"}

// errStopPage ends a page's read once its last row is in.
var errStopPage = errors.New("page full")

// events handles GET /v1/events?since=&until=&callback=&page_size=&page_token=:
// a page of accepted events from the store in (accepted_at, biz_id, seq)
// order, as {"events":[…],"next_page_token":…}. The page is written while
// the rows are read, one at a time, so neither a large page nor a large
// store is ever held in memory; the next page starts after the last row
// (a keyset cursor), so rows accepted meanwhile are never skipped or
// repeated within the range.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var problems []insurance.FieldError
	for name, values := range q {
		switch {
		case !slices.Contains(eventsParams, name):
			problems = append(problems, insurance.FieldError{Field: name,
				Message: "unknown query parameter (want " + strings.Join(eventsParams, ", ") + ")"})
		case len(values) > 1:
			problems = append(problems, insurance.FieldError{Field: name, Message: "is given more than once"})
		}
	}
	var f store.ExportFilter
	for name, into := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := q.Get(name); v != "" {
			t, err := policyclient.ParseExportTime(v)
			if err != nil {
				problems = append(problems, insurance.FieldError{Field: name, Message: err.Error()})
			}
			*into = t
		}
	}
	if v := q.Get("callback"); v != "" {
		if !slices.Contains(store.EventCallbacks(), v) {
			problems = append(problems, insurance.FieldError{Field: "callback",
				Message: fmt.Sprintf("unknown callback state %q (want one of %s)", v, strings.Join(store.EventCallbacks(), ", "))})
		}
		f.Callback = v
	}
	size := defaultEventsPage
	if v := q.Get("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxEventsPage {
			problems = append(problems, insurance.FieldError{Field: "page_size", Message: fmt.Sprintf("must be an integer from 1 to %d", maxEventsPage)})
		}
		size = n
	}
	if v := q.Get("page_token"); v != "" {
		c, err := policyclient.DecodeExportCursor(v)
		if err != nil {
			problems = append(problems, insurance.FieldError{Field: "page_token", Message: "is not a token this API returned"})
		}
		f.After = &c
	}
	if len(problems) > 0 {
		slices.SortFunc(problems, func(a, b insurance.FieldError) int { return strings.Compare(a.Field, b.Field) })
		writeError(w, &apiError{status: http.StatusBadRequest, Code: codeInvalidRequest,
			Message: "the query parameters are invalid", Fields: problems})
		return
	}
	// One row more than the page, to know whether another page follows.
	f.Limit = size + 1

	bw := bufio.NewWriterSize(w, 32<<10)
	enc := json.NewEncoder(bw)
	var (
		n       int
		last    store.ExportedEvent
		started bool
	)
	start := func() {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		_, _ = bw.WriteString(`{"events":[`)
		started = true
	}
	err := s.export.ExportEvents(r.Context(), f, func(e store.ExportedEvent) error {
		if n == size {
			return errStopPage
		}
		if !started {
			start()
		}
		if n > 0 {
			_ = bw.WriteByte(',')
		}
		n++
		last = e
		// Encode writes a newline after each row: valid JSON whitespace,
		// and a page reads as one row per line.
		return enc.Encode(policyclient.NewExportRow(e))
	})
	more := errors.Is(err, errStopPage)
	if err != nil && !more {
		if !started {
			s.fail(w, r, err)
			return
		}
		// The status is sent: all that is left is to cut the answer short,
		// so that the client sees a broken body, never a shorter page.
		s.logger.LogAttrs(r.Context(), slog.LevelError, "export failed mid-page",
			slog.String("route", r.Pattern), slog.String("error", err.Error()))
		panic(http.ErrAbortHandler)
	}
	if !started {
		start()
	}
	_, _ = bw.WriteString(`]`)
	if more {
		_, _ = bw.WriteString(`,"next_page_token":` + strconv.Quote(policyclient.EncodeExportCursor(last.Cursor())))
	}
	_, _ = bw.WriteString("}\n")
	_ = bw.Flush()
}
