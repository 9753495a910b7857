// Package reconcile owns comparing a business system's own list of events
// with what insuranceflow has recorded: per policy, the events only the
// list has (never accepted here), the events only the store has (the list
// misses them), and the events both have that are not yet delivered to TOP.
// The list is NDJSON or CSV of biz_id, stage, status and time_of_occurrence,
// or request_id; the store side is read row by row (store.ExportEvents), so
// only the list is held in memory.
package reconcile

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/store"
)

// Entry is one event of the business system's list.
type Entry struct {
	Line             int    `json:"line"`
	BizID            string `json:"biz_id"`
	RequestID        string `json:"request_id,omitempty"` // as given; "" when the list has none
	Stage            string `json:"stage,omitempty"`
	Status           string `json:"status,omitempty"`
	TimeOfOccurrence string `json:"time_of_occurrence,omitempty"`
}

// key is how an entry and a stored event are matched: the request id when
// the list gives one, else the event's natural key (which also matches an
// event reported with an explicit request id).
func naturalKey(bizID string, stage insurance.Stage, status insurance.Status, at string) string {
	return fmt.Sprintf("%s|%d|%d|%s", bizID, stage, status, at)
}

// LineError is a list line that cannot be read.
type LineError struct {
	Line    int
	Problem string
}

// ListError lists every bad line of a list.
type ListError struct{ Lines []LineError }

func (e *ListError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d bad lines in the list:", len(e.Lines))
	for _, l := range e.Lines {
		fmt.Fprintf(&b, "\n  line %d: %s", l.Line, l.Problem)
	}
	return b.String()
}

// list is the business system's events, indexed for matching.
type list struct {
	entries  []Entry
	byID     map[string]int // request id → entries index
	byKey    map[string]int // natural key → entries index
	matched  []bool
	policies map[string]bool
}

// Read reads a list: NDJSON objects or CSV with a header row, with the
// fields biz_id, stage, status, time_of_occurrence (stage and status as the
// API's numbers or names) and/or request_id; other fields are ignored. Every
// bad line is named in one *ListError.
func Read(r io.Reader, csvFormat bool) ([]Entry, error) {
	var (
		entries []Entry
		bad     []LineError
	)
	add := func(no int, fields map[string]string) {
		e, problem := entry(no, fields)
		if problem != "" {
			bad = append(bad, LineError{Line: no, Problem: problem})
			return
		}
		entries = append(entries, e)
	}
	if csvFormat {
		cr := csv.NewReader(r)
		cr.FieldsPerRecord = -1
		header, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read the CSV header: %w", err)
		}
		for i := range header {
			header[i] = strings.TrimSpace(strings.TrimPrefix(header[i], "\ufeff"))
		}
		for {
			rec, err := cr.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			no, _ := cr.FieldPos(0)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", no, err)
			}
			fields := map[string]string{}
			for i, cell := range rec {
				if i < len(header) {
					fields[header[i]] = strings.TrimSpace(cell)
				}
			}
			add(no, fields)
		}
	} else {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 64<<10), insurance.MaxBodyBytes)
		for no := 1; sc.Scan(); no++ {
			raw := strings.TrimSpace(sc.Text())
			if raw == "" {
				continue
			}
			var obj map[string]any
			if err := json.Unmarshal([]byte(raw), &obj); err != nil {
				bad = append(bad, LineError{Line: no, Problem: "not a JSON object"})
				continue
			}
			fields := map[string]string{}
			for k, v := range obj {
				switch x := v.(type) {
				case string:
					fields[k] = x
				case float64:
					fields[k] = fmt.Sprint(x)
				}
			}
			add(no, fields)
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("read the list: %w", err)
		}
	}
	if len(bad) > 0 {
		return nil, &ListError{Lines: bad}
	}
	return entries, nil
}

func entry(no int, f map[string]string) (Entry, string) {
	e := Entry{Line: no, BizID: f["biz_id"], RequestID: f["request_id"], TimeOfOccurrence: f["time_of_occurrence"]}
	if e.BizID == "" {
		return e, "biz_id is required"
	}
	if e.RequestID != "" && f["stage"] == "" {
		return e, ""
	}
	var problems []string
	stage, err := insurance.ParseStage(f["stage"])
	if err != nil {
		problems = append(problems, "stage: "+err.Error())
	}
	status, err := insurance.ParseStatus(f["status"])
	if err != nil {
		problems = append(problems, "status: "+err.Error())
	}
	if e.TimeOfOccurrence == "" {
		problems = append(problems, "time_of_occurrence is required without a request_id")
	}
	if len(problems) > 0 {
		return e, strings.Join(problems, "; ") + " (give biz_id, stage, status and time_of_occurrence, or biz_id and request_id)"
	}
	e.Stage, e.Status = stage.String(), status.String()
	return e, ""
}

func index(entries []Entry) *list {
	l := &list{entries: entries, byID: map[string]int{}, byKey: map[string]int{}, matched: make([]bool, len(entries)), policies: map[string]bool{}}
	for i, e := range entries {
		l.policies[e.BizID] = true
		if e.RequestID != "" {
			l.byID[e.BizID+"|"+e.RequestID] = i
		}
		if e.Stage != "" {
			stage, _ := insurance.ParseStage(e.Stage)
			status, _ := insurance.ParseStatus(e.Status)
			l.byKey[naturalKey(e.BizID, stage, status, e.TimeOfOccurrence)] = i
		}
	}
	return l
}

// match finds the list entry of a stored event.
func (l *list) match(e store.ExportedEvent) (int, bool) {
	if i, ok := l.byID[e.BizID+"|"+e.RequestID]; ok {
		return i, true
	}
	i, ok := l.byKey[naturalKey(e.BizID, insurance.Stage(e.Stage), insurance.Status(e.Status), e.TimeOfOccurrence)]
	return i, ok
}

// StoredEvent is an event of the store, as a difference names it.
type StoredEvent struct {
	Seq              int64  `json:"seq"`
	RequestID        string `json:"request_id"`
	Stage            string `json:"stage"`
	Status           string `json:"status"`
	TimeOfOccurrence string `json:"time_of_occurrence"`
	Callback         string `json:"callback"`
}

// Policy is one policy's differences.
type Policy struct {
	BizID string `json:"biz_id"`
	// MissingInStore are the list's events insuranceflow never accepted.
	MissingInStore []Entry `json:"missing_in_store,omitempty"`
	// MissingInList are accepted events the list does not have.
	MissingInList []StoredEvent `json:"missing_in_list,omitempty"`
	// NotDelivered are events on both sides whose callback is not yet
	// delivered (nor imported as already reported, nor skipped).
	NotDelivered []StoredEvent `json:"not_delivered,omitempty"`
}

// Report is the comparison.
type Report struct {
	ListEvents     int      `json:"list_events"`
	StoreEvents    int      `json:"store_events"`
	Matched        int      `json:"matched"`
	MissingInStore int      `json:"missing_in_store"`
	MissingInList  int      `json:"missing_in_list"`
	NotDelivered   int      `json:"not_delivered"`
	Policies       []Policy `json:"policies"` // only those with a difference, by biz_id
}

// Agree says the two sides hold the same events.
func (r Report) Agree() bool { return r.MissingInStore == 0 && r.MissingInList == 0 }

// Exporter streams the store's events.
type Exporter interface {
	ExportEvents(ctx context.Context, f store.ExportFilter, fn func(store.ExportedEvent) error) error
}

// finalCallbacks are the callback states that need nothing more.
var finalCallbacks = []string{"delivered", store.CallbackImported, "skipped"}

// Compare compares entries with the store. With onlyListed, stored events
// of policies the list does not mention are left out (a list of some
// policies); otherwise they are missing in the list.
func Compare(ctx context.Context, ex Exporter, entries []Entry, onlyListed bool) (Report, error) {
	l := index(entries)
	rep := Report{ListEvents: len(entries)}
	diffs := map[string]*Policy{}
	diff := func(bizID string) *Policy {
		p, ok := diffs[bizID]
		if !ok {
			p = &Policy{BizID: bizID}
			diffs[bizID] = p
		}
		return p
	}
	err := ex.ExportEvents(ctx, store.ExportFilter{}, func(e store.ExportedEvent) error {
		if onlyListed && !l.policies[e.BizID] {
			return nil
		}
		rep.StoreEvents++
		se := StoredEvent{Seq: e.Seq, RequestID: e.RequestID, Stage: insurance.Stage(e.Stage).String(),
			Status: insurance.Status(e.Status).String(), TimeOfOccurrence: e.TimeOfOccurrence, Callback: e.Callback}
		i, ok := l.match(e)
		if !ok {
			p := diff(e.BizID)
			p.MissingInList = append(p.MissingInList, se)
			rep.MissingInList++
			return nil
		}
		l.matched[i] = true
		rep.Matched++
		if !slices.Contains(finalCallbacks, e.Callback) {
			p := diff(e.BizID)
			p.NotDelivered = append(p.NotDelivered, se)
			rep.NotDelivered++
		}
		return nil
	})
	if err != nil {
		return Report{}, fmt.Errorf("read the store's events: %w", err)
	}
	for i, e := range l.entries {
		if !l.matched[i] {
			p := diff(e.BizID)
			p.MissingInStore = append(p.MissingInStore, e)
			rep.MissingInStore++
		}
	}
	rep.Policies = make([]Policy, 0, len(diffs))
	for _, p := range diffs {
		rep.Policies = append(rep.Policies, *p)
	}
	slices.SortFunc(rep.Policies, func(a, b Policy) int { return strings.Compare(a.BizID, b.BizID) })
	return rep, nil
}
