package simulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"
)

// maxFaultsBody caps a POST /_sim/faults body.
const maxFaultsBody = 64 << 10

// admin wraps a control endpoint with its log line.
func (s *Simulator) admin(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h(rec, r)
		s.logger.LogAttrs(r.Context(), slog.LevelInfo, "sim request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("http_status", rec.status),
			slog.Duration("duration", time.Since(start)),
		)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

// callbacksBody is the GET /_sim/callbacks answer.
type callbacksBody struct {
	Callbacks []Receipt `json:"callbacks"`
}

func (s *Simulator) getCallbacks(w http.ResponseWriter, r *http.Request) {
	writeAdminJSON(w, http.StatusOK, callbacksBody{Callbacks: s.Callbacks(r.URL.Query().Get("biz_id"))})
}

func (s *Simulator) deleteCallbacks(w http.ResponseWriter, _ *http.Request) {
	writeAdminJSON(w, http.StatusOK, map[string]int{"deleted": s.ResetCallbacks()})
}

func (s *Simulator) getFaults(w http.ResponseWriter, _ *http.Request) {
	writeAdminJSON(w, http.StatusOK, s.Faults())
}

// adminError is the body of a failed control request.
type adminError struct {
	Error    string         `json:"error"`
	Problems []FieldProblem `json:"problems,omitempty"`
}

// postFaults applies a partial update: the fields present replace the
// faults in force, the others stay. ban_seconds starts a ban (0 lifts one).
func (s *Simulator) postFaults(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFaultsBody))
	if err != nil {
		writeAdminJSON(w, http.StatusBadRequest, adminError{Error: fmt.Sprintf("read faults: %v", err)})
		return
	}
	patch, err := decodeFaultsPatch(body)
	if err != nil {
		writeAdminJSON(w, http.StatusBadRequest, adminError{Error: err.Error()})
		return
	}
	f, err := s.patchFaults(patch)
	if err != nil {
		resp := adminError{Error: err.Error()}
		var fe *FaultsError
		if errors.As(err, &fe) {
			resp.Problems = fe.Problems
		}
		writeAdminJSON(w, http.StatusBadRequest, resp)
		return
	}
	writeAdminJSON(w, http.StatusOK, f)
}

func (s *Simulator) getStats(w http.ResponseWriter, _ *http.Request) {
	writeAdminJSON(w, http.StatusOK, s.Stats())
}

func (s *Simulator) getHealth(w http.ResponseWriter, _ *http.Request) {
	writeAdminJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func writeAdminJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Every value written here is a plain struct of the simulator's own;
		// failing to encode one is a bug, and the client should see a 500.
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
