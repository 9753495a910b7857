package ingress

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"sync"
	"time"

	"github.com/insuranceflow/insuranceflow/importing"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// maxImportBytes bounds an import body: about 100,000 events. A larger
// adoption is imported in several requests (or with `starter import`);
// the lines are idempotent, so splitting a file anywhere is safe.
const maxImportBytes = 32 << 20

// importCallTimeout bounds each call an import makes into Temporal (one
// per policy). It is longer than a report's: an import's Update-with-Start
// carries up to workflows.MaxImportEvents events and waits for their store
// write.
const importCallTimeout = 30 * time.Second

// mediaNDJSON is the media type of an import's body and answer.
const mediaNDJSON = "application/x-ndjson"

// importSummaryLine is the answer's last line.
type importSummaryLine struct {
	Summary importing.Summary `json:"summary"`
}

// imports handles POST /v1/imports[?dry_run=true]: an NDJSON body of
// import lines (the fields of POST /v1/insurance-results plus
// already_reported), imported as `starter import` does. The answer is
// NDJSON too, written as each policy finishes: one line per event line
// with its outcome, then {"summary":{…}}. Its status is 200 once the body
// has been read (every line's own outcome says what became of it); a body
// that cannot be read at all is a 4xx before anything is imported.
func (s *Server) imports(w http.ResponseWriter, r *http.Request) {
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mediaType != mediaNDJSON && mediaType != "application/jsonl") {
		writeError(w, &apiError{status: http.StatusUnsupportedMediaType, Code: codeUnsupportedMediaType,
			Message: "Content-Type must be " + mediaNDJSON})
		return
	}
	dryRun := false
	for name, values := range r.URL.Query() {
		if name != "dry_run" || len(values) != 1 || (values[0] != "true" && values[0] != "false") {
			writeError(w, &apiError{status: http.StatusBadRequest, Code: codeInvalidRequest,
				Message: "the query parameters are invalid",
				Fields:  []insurance.FieldError{{Field: name, Message: "unknown query parameter (want dry_run=true|false)"}}})
			return
		}
		dryRun = values[0] == "true"
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxImportBytes))
	if apiErr := bodyError(err, maxImportBytes); apiErr != nil {
		writeError(w, apiErr)
		return
	}
	lines, err := importing.Read(bytes.NewReader(body), importing.FormatNDJSON)
	if err != nil {
		writeError(w, &apiError{status: http.StatusBadRequest, Code: codeInvalidRequest, Message: err.Error()})
		return
	}

	w.Header().Set("Content-Type", mediaNDJSON)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	// The server's write timeout is sized for one call; an import streams
	// for as long as its policies take, so each line extends it to cover
	// the next policy's calls.
	rc := http.NewResponseController(w)
	extend := func() { _ = rc.SetWriteDeadline(time.Now().Add(2*importCallTimeout + 10*time.Second)) }
	extend()
	flusher, _ := w.(http.Flusher)
	var mu sync.Mutex
	enc := json.NewEncoder(w)
	write := func(v any) {
		mu.Lock()
		defer mu.Unlock()
		extend()
		// A caller that went away cancels the request's context, which
		// stops the import; nothing more to do about a failed write.
		_ = enc.Encode(v)
		if flusher != nil {
			flusher.Flush()
		}
	}
	opts := importing.Options{DryRun: dryRun, By: callerName(r.Context()), Report: func(l importing.LineResult) { write(l) }}
	sum, err := importing.Run(r.Context(), timedImports{next: s.importer, timeout: importCallTimeout}, lines, opts)
	if err != nil {
		s.logger.WarnContext(r.Context(), "import stopped", "error", err, "lines", len(lines))
		return
	}
	write(importSummaryLine{Summary: sum})
}

// timedImports bounds each call into the policy client.
type timedImports struct {
	next    importing.Policies
	timeout time.Duration
}

func (t timedImports) Import(ctx context.Context, bizID string, req workflows.ImportRequest) (workflows.ImportResult, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	return t.next.Import(ctx, bizID, req)
}

func (t timedImports) PolicySnapshot(ctx context.Context, bizID string) (*workflows.Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	return t.next.PolicySnapshot(ctx, bizID)
}

func (t timedImports) CheckClock(r insurance.Result) error { return t.next.CheckClock(r) }
