package insurance

import (
	"errors"
	"testing"
	"time"
)

func TestLocationIsFixedGMT8(t *testing.T) {
	at := time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC).In(Location()) // summer: no DST either way
	name, offset := at.Zone()
	if name != "GMT+8" || offset != 8*3600 {
		t.Fatalf("zone = %s %d, want GMT+8 28800", name, offset)
	}
}

func TestOccurredAt(t *testing.T) {
	// The host's zone must not matter; swap time.Local for the duration.
	for _, local := range []*time.Location{time.UTC, time.FixedZone("UTC-5", -5*3600), time.FixedZone("UTC+14", 14*3600)} {
		t.Run("local "+local.String(), func(t *testing.T) {
			saved := time.Local
			time.Local = local
			t.Cleanup(func() { time.Local = saved })

			tests := []struct {
				value string
				unix  int64
			}{
				{"2025-04-08 09:55:00", 1744077300},
				{"2024-02-29 23:59:59", 1709222399},
				{"2025-01-01 00:00:00", 1735660800},
				{"1970-01-01 08:00:00", 0},
			}
			for _, tt := range tests {
				got, err := Result{TimeOfOccurrence: tt.value}.OccurredAt()
				if err != nil {
					t.Fatalf("OccurredAt(%q) error = %v", tt.value, err)
				}
				if got.Unix() != tt.unix {
					t.Fatalf("OccurredAt(%q).Unix() = %d, want %d", tt.value, got.Unix(), tt.unix)
				}
				if back := got.Format(TimeLayout); back != tt.value {
					t.Fatalf("OccurredAt(%q) formats back as %q", tt.value, back)
				}
			}
		})
	}
}

func TestOccurredAtRejects(t *testing.T) {
	tests := []struct {
		value string
		want  string
	}{
		{"", "is required"},
		{"2025-04-08", `must be yyyy-MM-dd HH:mm:ss in GMT+8, got "2025-04-08"`},
		{"2025-04-31 10:00:00", `"2025-04-31 10:00:00" is not a real calendar time`},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			got, err := Result{TimeOfOccurrence: tt.value}.OccurredAt()
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("OccurredAt() error = %v, want a *ValidationError", err)
			}
			want := FieldError{"time_of_occurrence", tt.want}
			if len(ve.Problems) != 1 || ve.Problems[0] != want {
				t.Fatalf("problems = %q, want [%q]", ve.Problems, want)
			}
			if !got.IsZero() {
				t.Fatalf("OccurredAt() time = %v, want zero with an error", got)
			}
		})
	}
}
