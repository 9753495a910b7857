package insurance

import (
	"testing"
)

func TestDeriveRequestIDIsStable(t *testing.T) {
	// Pinned: a change here would make every re-sent event after a deploy
	// look new to the running workflows. Checked once outside Go with
	// printf '%s' '27:insuranceflow/request_id/v117:24010900100YSKSSG1:11:119:2025-04-08 09:55:00' | sha256sum
	got := DeriveRequestID("24010900100YSKSSG", StagePreInsure, StatusSuccess, "2025-04-08 09:55:00")
	const want = "r-c9f1fab8da6582cbc4e245d038944f01"
	if got != want {
		t.Fatalf("DeriveRequestID() = %s, want %s", got, want)
	}
	if again := DeriveRequestID("24010900100YSKSSG", StagePreInsure, StatusSuccess, "2025-04-08 09:55:00"); again != got {
		t.Fatalf("second call = %s, first = %s", again, got)
	}
}

func TestDeriveRequestIDDiffers(t *testing.T) {
	const at = "2025-04-08 09:55:00"
	base := DeriveRequestID("B1", StageInsure, StatusSuccess, at)
	tests := []struct {
		name string
		id   string
	}{
		{"biz_id", DeriveRequestID("B2", StageInsure, StatusSuccess, at)},
		{"stage", DeriveRequestID("B1", StageCancel, StatusSuccess, at)},
		{"status", DeriveRequestID("B1", StageInsure, StatusFailure, at)},
		{"time_of_occurrence", DeriveRequestID("B1", StageInsure, StatusSuccess, "2025-04-08 09:55:01")},
		// Plain concatenation would make these two equal ("B1" "3" "1" vs "B" "13" "1").
		{"boundary between biz_id and stage", DeriveRequestID("B", 13, StatusSuccess, at)},
		{"boundary between status and time", DeriveRequestID("B1", StageInsure, 12, at[1:])},
	}
	seen := map[string]string{base: "base"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if other, dup := seen[tt.id]; dup {
				t.Fatalf("id %s equals the id of %s", tt.id, other)
			}
			seen[tt.id] = tt.name
		})
	}
}

func TestDeriveRequestIDSatisfiesRequestIDRules(t *testing.T) {
	for _, biz := range []string{"B1", "24010900100YSKSSG", "x"} {
		t.Run(biz, func(t *testing.T) {
			r := Result{BizID: biz, Stage: StageEndorse, Status: StatusFailure,
				TimeOfOccurrence: "2025-04-08 09:55:00", InsuranceType: TypeHomeProperty}.WithRequestID()
			if len(r.RequestID) != 34 {
				t.Fatalf("request id %q has length %d, want 34", r.RequestID, len(r.RequestID))
			}
			if err := r.Validate(); err != nil {
				t.Fatalf("Validate() with derived request id = %v", err)
			}
		})
	}
}

func TestWithRequestID(t *testing.T) {
	r := validResult()
	r.RequestID = ""
	filled := r.WithRequestID()
	if want := DeriveRequestID(r.BizID, r.Stage, r.Status, r.TimeOfOccurrence); filled.RequestID != want {
		t.Fatalf("WithRequestID().RequestID = %s, want %s", filled.RequestID, want)
	}
	if filled.RequestID == "" {
		t.Fatalf("WithRequestID() left RequestID empty")
	}
	filled.RequestID = ""
	if filled != r {
		t.Fatalf("WithRequestID() changed other fields: %v, want %v", filled, r)
	}
	if r.RequestID != "" {
		t.Fatalf("WithRequestID() modified its receiver")
	}

	given := validResult()
	given.RequestID = "caller-42"
	if got := given.WithRequestID(); got != given {
		t.Fatalf("WithRequestID() with a given id = %v, want it unchanged", got)
	}
}
