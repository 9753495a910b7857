package reconcile

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/store"
)

type fakeExporter []store.ExportedEvent

func (f fakeExporter) ExportEvents(_ context.Context, _ store.ExportFilter, fn func(store.ExportedEvent) error) error {
	for _, e := range f {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

func stored(biz string, seq int64, stage, status int, at, callback, rid string) store.ExportedEvent {
	if rid == "" {
		rid = insurance.DeriveRequestID(biz, insurance.Stage(stage), insurance.Status(status), at)
	}
	return store.ExportedEvent{BizID: biz, Seq: seq, RequestID: rid, Stage: stage, Status: status, TimeOfOccurrence: at, Callback: callback}
}

func TestCompareFindsEachDifference(t *testing.T) {
	list := `{"biz_id":"A","stage":1,"status":1,"time_of_occurrence":"2025-04-08 09:00:00"}
{"biz_id":"A","stage":"underwrite","status":"success","time_of_occurrence":"2025-04-08 10:00:00"}
{"biz_id":"A","stage":3,"status":1,"time_of_occurrence":"2025-04-08 11:00:00"}
{"biz_id":"B","request_id":"given-1"}
{"biz_id":"C","stage":1,"status":1,"time_of_occurrence":"2025-04-08 09:00:00"}
`
	entries, err := Read(strings.NewReader(list), false)
	if err != nil {
		t.Fatal(err)
	}
	ex := fakeExporter{
		stored("A", 1, 1, 1, "2025-04-08 09:00:00", "imported", ""),
		stored("A", 2, 2, 1, "2025-04-08 10:00:00", "retrying", "explicit-id"), // matched by its natural key
		stored("B", 1, 1, 1, "2025-04-08 09:00:00", "delivered", "given-1"),
		stored("B", 2, 2, 1, "2025-04-08 10:00:00", "delivered", ""), // the list misses it
		stored("D", 1, 1, 1, "2025-04-08 09:00:00", "delivered", ""), // a policy the list does not name
	}
	rep, err := Compare(context.Background(), ex, entries, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Agree() || rep.Matched != 3 || rep.MissingInStore != 2 || rep.MissingInList != 2 || rep.NotDelivered != 1 {
		t.Fatalf("report = %+v", rep)
	}
	var got []string
	for _, p := range rep.Policies {
		for _, e := range p.MissingInStore {
			got = append(got, p.BizID+" store-missing line "+string(rune('0'+e.Line)))
		}
		for _, e := range p.MissingInList {
			got = append(got, p.BizID+" list-missing seq "+string(rune('0'+e.Seq)))
		}
		for _, e := range p.NotDelivered {
			got = append(got, p.BizID+" undelivered seq "+string(rune('0'+e.Seq))+" "+e.Callback)
		}
	}
	want := "A store-missing line 3|A undelivered seq 2 retrying|B list-missing seq 2|C store-missing line 5|D list-missing seq 1"
	if strings.Join(got, "|") != want {
		t.Fatalf("differences = %s\nwant %s", strings.Join(got, "|"), want)
	}
	only, _ := Compare(context.Background(), ex, entries, true)
	if only.MissingInList != 1 || only.StoreEvents != 4 {
		t.Errorf("only listed = %+v, want D left out", only)
	}
}

func TestReadNamesEveryBadLine(t *testing.T) {
	csv := "biz_id,stage,status,time_of_occurrence\nA,1,1,2025-04-08 09:00:00\n,1,1,x\nB,9,1,2025-04-08 09:00:00\nC,1,1,\n"
	_, err := Read(strings.NewReader(csv), true)
	var le *ListError
	if !errors.As(err, &le) || len(le.Lines) != 3 || le.Lines[0].Line != 3 || le.Lines[1].Line != 4 || le.Lines[2].Line != 5 {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(le.Lines[1].Problem, "stage") || !strings.Contains(le.Lines[2].Problem, "time_of_occurrence") {
		t.Errorf("problems = %+v", le.Lines)
	}
}
