package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/top"
)

// TestFarFutureTimeIsRefusedAndDoesNotWedgeThePolicy: an event dated a
// year ahead of the server's clock is refused by the JSON API (400 naming
// time_of_occurrence) and by the TOP drop-in (call_success=false
// INVALID_REQUEST), and the policy then takes its real events. Accepted, it
// would have made every later real event time_went_backwards.
func TestFarFutureTimeIsRefusedAndDoesNotWedgeThePolicy(t *testing.T) {
	biz := newBizID("FUT")
	future := time.Now().In(insurance.Location()).AddDate(1, 0, 0).Format(insurance.TimeLayout)
	body := event(biz, 1, 1, 0)
	body["time_of_occurrence"] = future

	var raw json.RawMessage
	code := call(t, http.MethodPost, "/v1/insurance-results", body, &raw)
	var e struct {
		Error struct {
			Code   string `json:"code"`
			Fields []struct {
				Field   string `json:"field"`
				Message string `json:"message"`
			} `json:"fields"`
		} `json:"error"`
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatalf("body %s: %v", raw, err)
	}
	if code != http.StatusBadRequest || e.Error.Code != "invalid_request" || len(e.Error.Fields) != 1 ||
		e.Error.Fields[0].Field != "time_of_occurrence" || !strings.Contains(e.Error.Fields[0].Message, "ahead of the server's clock") {
		t.Fatalf("status=%d body=%s, want 400 invalid_request naming time_of_occurrence", code, raw)
	}

	r := result(t, biz, 1, 1, 0)
	r.TimeOfOccurrence = future
	out := routerClient(t, top.SignHMACSHA256, false).Callback(context.Background(), r)
	if out.Class != top.ClassRejected || out.FailCode != "INVALID_REQUEST" || !strings.Contains(out.FailMessage, "time_of_occurrence") {
		t.Fatalf("through /router/rest: %s (%s), want call_success=false INVALID_REQUEST naming time_of_occurrence", out.Summary(), out.FailMessage)
	}

	// The policy was not touched: its real first event is seq 1.
	mustAccept(t, event(biz, 1, 1, 0), 1, "pre_insured")
}
