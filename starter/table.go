package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/insuranceflow/insuranceflow/insurance"
)

// table writes aligned columns, under an optional header row. Cells are cleaned of control characters
// (a tab or newline inside an error message would break the alignment) and
// empty cells show as "-".
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if i > 0 {
			fmt.Fprint(t.tw, "\t")
		}
		fmt.Fprint(t.tw, cell(c))
	}
	fmt.Fprintln(t.tw)
}

func (t *table) flush() error { return t.tw.Flush() }

// maxCell bounds a table cell; --json shows values in full.
const maxCell = 60

func cell(s string) string {
	if s == "" {
		return "-"
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if utf8.RuneCountInString(s) > maxCell {
		s = string([]rune(s)[:maxCell-1]) + "…"
	}
	return s
}

// apiTime shows an instant the way the API writes times: GMT+8,
// yyyy-MM-dd HH:mm:ss, so it lines up with time_of_occurrence.
func apiTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(insurance.Location()).Format(insurance.TimeLayout)
}

func apiTimePtr(t *time.Time) string {
	if t == nil {
		return ""
	}
	return apiTime(*t)
}

// typeName names an insurance type, or nothing before the first event set it.
func typeName(t insurance.Type) string {
	if t == 0 {
		return ""
	}
	return t.String()
}
