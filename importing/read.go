// Package importing owns bringing policies already in flight into
// insuranceflow: it reads an import file (NDJSON or CSV: the fields of
// POST /v1/insurance-results plus already_reported), groups its lines per
// biz_id, sends each policy's events in file order in one import Update
// (through policyclient, with bounded concurrency and rate), or, for a dry
// run, judges them against the policy as it stands without writing, and
// reports every line's outcome with its line number. The starter's
// `import` command and the ingress's POST /v1/imports share it.
package importing

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/insuranceflow/insuranceflow/insurance"
)

// FieldAlreadyReported is the field an import line adds to an insurance
// result: true when the replaced system has reported the event to TOP.
const FieldAlreadyReported = "already_reported"

// Format is an import file's format.
type Format string

const (
	FormatNDJSON Format = "ndjson" // one JSON object a line
	FormatCSV    Format = "csv"    // a header row of field names, then one event a row
)

// ParseFormat reads "ndjson" or "csv".
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case FormatNDJSON, FormatCSV:
		return f, nil
	}
	return "", fmt.Errorf("format %q is not ndjson or csv", s)
}

// Line is one event line of an import file.
type Line struct {
	No              int              // its line number in the file, from 1
	Event           insurance.Result // RequestID given or derived; zero when Err is set
	AlreadyReported bool
	// Err is why the line cannot be an event: an *insurance.ValidationError
	// naming each field's problem.
	Err error
}

// maxLineBytes bounds one NDJSON line, as the ingress bounds one event.
const maxLineBytes = insurance.MaxBodyBytes

// Read reads every line of an import file. Blank lines are skipped; a line
// that is not a valid event is returned with its Err, so that a dry run can
// name every bad line at once. The error is for a file that cannot be read
// at all (an I/O error, a CSV header without biz_id).
func Read(r io.Reader, f Format) ([]Line, error) {
	switch f {
	case FormatCSV:
		return readCSV(r)
	default:
		return readNDJSON(r)
	}
}

func readNDJSON(r io.Reader) ([]Line, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLineBytes+1)
	var lines []Line
	for no := 1; sc.Scan(); no++ {
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		lines = append(lines, decodeLine(no, raw))
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("line %d: longer than %d bytes", len(lines)+1, maxLineBytes)
		}
		return nil, fmt.Errorf("read the import file: %w", err)
	}
	return lines, nil
}

// decodeLine decodes one NDJSON line: already_reported is taken out, and
// the rest is decoded exactly as POST /v1/insurance-results decodes a body.
func decodeLine(no int, raw []byte) Line {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		// Decode names the problem as the API does ("body: …").
		_, derr := insurance.Decode(raw)
		if derr == nil {
			derr = invalid(insurance.FieldError{Field: "body", Message: "is not a JSON object"})
		}
		return Line{No: no, Err: derr}
	}
	reported, problem := takeAlreadyReported(obj)
	rest, err := json.Marshal(obj)
	if err != nil {
		return Line{No: no, Err: invalid(insurance.FieldError{Field: "body", Message: err.Error()})}
	}
	return finishLine(no, rest, reported, problem)
}

// takeAlreadyReported removes already_reported from obj and reads it.
func takeAlreadyReported(obj map[string]json.RawMessage) (bool, *insurance.FieldError) {
	raw, ok := obj[FieldAlreadyReported]
	delete(obj, FieldAlreadyReported)
	if !ok {
		return false, &insurance.FieldError{Field: FieldAlreadyReported, Message: "is required: true when the replaced system has reported the event to TOP, else false"}
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil || string(raw) == "null" {
		return false, &insurance.FieldError{Field: FieldAlreadyReported, Message: "must be true or false"}
	}
	return b, nil
}

// finishLine decodes an event body and adds the already_reported problem.
func finishLine(no int, body []byte, reported bool, problem *insurance.FieldError) Line {
	ev, err := insurance.Decode(body)
	var problems []insurance.FieldError
	if err != nil {
		var v *insurance.ValidationError
		if !errors.As(err, &v) {
			return Line{No: no, Err: err}
		}
		problems = v.Problems
	}
	if problem != nil {
		problems = append(problems, *problem)
	}
	if len(problems) > 0 {
		return Line{No: no, Err: invalid(problems...)}
	}
	return Line{No: no, Event: ev.WithRequestID(), AlreadyReported: reported}
}

func invalid(ps ...insurance.FieldError) error {
	return &insurance.ValidationError{Problems: ps}
}

// readCSV reads a header row of field names, then one event a row. Every
// cell goes into the event's JSON body as a string (Decode accepts numbers
// as decimal strings); an empty cell is an absent field.
func readCSV(r io.Reader) ([]Line, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // a short row is a bad line, not a bad file
	cr.ReuseRecord = false
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
	if !slices.Contains(header, "biz_id") {
		return nil, fmt.Errorf("line 1: the CSV header %q has no biz_id column", strings.Join(header, ","))
	}
	var lines []Line
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return lines, nil
		}
		line, _ := cr.FieldPos(0)
		var perr *csv.ParseError
		if errors.As(err, &perr) {
			lines = append(lines, Line{No: perr.StartLine, Err: invalid(insurance.FieldError{Field: "body", Message: perr.Err.Error()})})
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read the CSV file: %w", err)
		}
		if len(rec) != len(header) {
			lines = append(lines, Line{No: line, Err: invalid(insurance.FieldError{Field: "body",
				Message: fmt.Sprintf("has %d cells, the header %d", len(rec), len(header))})})
			continue
		}
		obj := make(map[string]json.RawMessage, len(rec))
		for i, cell := range rec {
			if cell == "" {
				continue // an empty cell is an absent field
			}
			if header[i] == FieldAlreadyReported {
				obj[header[i]] = json.RawMessage(csvBool(cell))
				continue
			}
			obj[header[i]], _ = json.Marshal(cell)
		}
		reported, problem := takeAlreadyReported(obj)
		body, err := json.Marshal(obj)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		lines = append(lines, finishLine(line, body, reported, problem))
	}
}

// csvBool is a CSV already_reported cell as JSON: true/false (any case),
// 1/0; anything else stays a string, which takeAlreadyReported refuses.
func csvBool(cell string) string {
	switch strings.ToLower(strings.TrimSpace(cell)) {
	case "true", "1":
		return "true"
	case "false", "0":
		return "false"
	}
	b, _ := json.Marshal(cell)
	return string(b)
}
