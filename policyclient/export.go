package policyclient

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/store"
)

// EventExporter streams the store's accepted events; *store.Store is one.
type EventExporter interface {
	ExportEvents(ctx context.Context, f store.ExportFilter, fn func(store.ExportedEvent) error) error
}

var _ EventExporter = (*store.Store)(nil)

// ExportRow is one exported event as `starter export` and GET /v1/events
// show it: enumerations by name, times in RFC 3339 (UTC). No payload, so no
// personal data.
type ExportRow struct {
	BizID            string     `json:"biz_id"`
	Seq              int64      `json:"seq"`
	RequestID        string     `json:"request_id"`
	Stage            string     `json:"stage"`
	Status           string     `json:"status"`
	TimeOfOccurrence string     `json:"time_of_occurrence"`
	AcceptedAt       time.Time  `json:"accepted_at"`
	State            string     `json:"state"` // the policy's state after the event
	Callback         string     `json:"callback"`
	Attempts         int        `json:"attempts"`
	DeliveredAt      *time.Time `json:"delivered_at"`
	TOPRequestID     string     `json:"top_request_id"`
}

// NewExportRow is the row of one exported event.
func NewExportRow(e store.ExportedEvent) ExportRow {
	return ExportRow{
		BizID: e.BizID, Seq: e.Seq, RequestID: e.RequestID,
		Stage: insurance.Stage(e.Stage).String(), Status: insurance.Status(e.Status).String(),
		TimeOfOccurrence: e.TimeOfOccurrence, AcceptedAt: e.AcceptedAt, State: e.StateAfter,
		Callback: e.Callback, Attempts: e.Attempts, DeliveredAt: e.DeliveredAt, TOPRequestID: e.TOPRequestID,
	}
}

// ExportCSVHeader is the header row of a CSV export, in CSVRecord's order.
func ExportCSVHeader() []string {
	return []string{"biz_id", "seq", "request_id", "stage", "status", "time_of_occurrence", "accepted_at",
		"state", "callback", "attempts", "delivered_at", "top_request_id"}
}

// CSVRecord is r as a CSV record (see ExportCSVHeader); a callback not yet
// delivered has an empty delivered_at.
func (r ExportRow) CSVRecord() []string {
	delivered := ""
	if r.DeliveredAt != nil {
		delivered = r.DeliveredAt.UTC().Format(time.RFC3339Nano)
	}
	return []string{r.BizID, strconv.FormatInt(r.Seq, 10), r.RequestID, r.Stage, r.Status, r.TimeOfOccurrence,
		r.AcceptedAt.UTC().Format(time.RFC3339Nano), r.State, r.Callback, strconv.Itoa(r.Attempts), delivered, r.TOPRequestID}
}

// ParseExportTime reads a --since/--until (or since=/until=) bound: RFC 3339
// ("2025-04-08T09:55:00+08:00"), or the API's "2025-04-08 09:55:00" in
// Beijing time, or a date "2025-04-08" (its midnight in Beijing time).
func ParseExportTime(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(insurance.TimeLayout, v, insurance.Location()); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, v, insurance.Location()); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time (want RFC 3339, \"2006-01-02 15:04:05\" or \"2006-01-02\", Beijing time unless an offset is given)", v)
}

// EncodeExportCursor turns the position of the last row of a page into the
// page token of the next.
func EncodeExportCursor(c store.ExportCursor) string {
	raw := strconv.FormatInt(c.AcceptedAt.UnixMicro(), 10) + ":" + strconv.FormatInt(c.Seq, 10) + ":" + c.BizID
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// DecodeExportCursor reads a page token EncodeExportCursor made.
func DecodeExportCursor(token string) (store.ExportCursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return store.ExportCursor{}, fmt.Errorf("not a page token")
	}
	parts := strings.SplitN(string(raw), ":", 3)
	if len(parts) != 3 || parts[2] == "" {
		return store.ExportCursor{}, fmt.Errorf("not a page token")
	}
	us, err1 := strconv.ParseInt(parts[0], 10, 64)
	seq, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil {
		return store.ExportCursor{}, fmt.Errorf("not a page token")
	}
	return store.ExportCursor{AcceptedAt: time.UnixMicro(us).UTC(), Seq: seq, BizID: parts[2]}, nil
}
