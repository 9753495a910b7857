package ingress

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/insuranceflow/insuranceflow/api"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// maxOperatorBody bounds the optional {"reason": ...} of an operator
// action: policyclient refuses reasons over 500 characters anyway.
const maxOperatorBody = 4 << 10

// report handles POST /v1/insurance-results: 202 with the acceptance, or
// 200 with the original acceptance when the event was accepted before.
func (s *Server) report(w http.ResponseWriter, r *http.Request) {
	body, apiErr := readJSONBody(w, r, insurance.MaxBodyBytes)
	if apiErr != nil {
		s.countRejected(APIJSON, workflows.ReasonInvalidRequest)
		writeError(w, apiErr)
		return
	}
	result, err := insurance.Decode(body)
	if err == nil {
		result, err = withIdempotencyKey(result, r.Header.Get(headerIdempotencyKey))
	}
	if err != nil {
		s.countReport(r.Context(), APIJSON, workflows.Acceptance{}, err)
		s.fail(w, r, err)
		return
	}
	noteBizID(r.Context(), result.BizID)
	ctx, cancel := context.WithTimeout(r.Context(), s.callTimeout)
	defer cancel()
	acc, err := s.policies.Report(ctx, result)
	s.countReport(r.Context(), APIJSON, acc, err)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	status := http.StatusAccepted
	if acc.Duplicate {
		// Nothing new was accepted: the answer is the original one.
		status = http.StatusOK
	}
	writeJSON(w, status, acceptanceOf(acc))
}

// headerIdempotencyKey is the HTTP convention for a request id: business
// systems that retry a POST send the same key, which is what request_id is.
const headerIdempotencyKey = "Idempotency-Key"

// withIdempotencyKey takes an Idempotency-Key header as r's request id. The
// body's request_id may say the same; two different ids for one request are
// a mistake to refuse, not to resolve by picking one.
func withIdempotencyKey(r insurance.Result, key string) (insurance.Result, error) {
	if key == "" {
		return r, nil
	}
	invalid := func(msg string) error {
		return &insurance.ValidationError{Problems: []insurance.FieldError{{Field: headerIdempotencyKey, Message: msg}}}
	}
	if r.RequestID != "" && r.RequestID != key {
		return insurance.Result{}, invalid("differs from the body's request_id (send one, or both the same)")
	}
	r.RequestID = key
	// The key is held to request_id's rules, and the problem named after
	// the header the caller actually sent.
	var bad *insurance.ValidationError
	if err := r.Validate(); errors.As(err, &bad) {
		for _, p := range bad.Problems {
			if p.Field == "request_id" {
				return insurance.Result{}, invalid(p.Message)
			}
		}
		return insurance.Result{}, err
	}
	return r, nil
}

// openAPI serves the API's own contract, the embedded api/openapi.yaml.
func (s *Server) openAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", api.OpenAPIContentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(api.OpenAPI())
}

// status handles GET /v1/policies/{biz_id}.
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	bizID, ok := pathBizID(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.callTimeout)
	defer cancel()
	st, err := s.policies.Status(ctx, bizID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// Who acted is only in the store's audit trail, also while the
	// workflow runs (its status query knows what an action did, not who
	// took it), so it is read from there after the status.
	actions, err := s.policies.OperatorActions(ctx, bizID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// So are the notifications the business system never acknowledged.
	lost, err := s.policies.LostNotifications(ctx, bizID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, policyView{StatusView: policyclient.NewStatusView(st), OperatorActions: actions, LostNotifications: lost})
}

// listParams are the query parameters GET /v1/policies understands; any
// other is refused, so a misspelt filter cannot silently list everything.
var listParams = []string{"state", "callback_state", "page_size", "page_token", "include"}

// list handles GET /v1/policies?state=&callback_state=&page_size=&page_token=&include=closed:
// each policy once, the open ones by default, with include=closed every
// policy the store has recorded (policyclient.Client.List).
func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var problems []insurance.FieldError
	for name, values := range q {
		switch {
		case !slices.Contains(listParams, name):
			problems = append(problems, insurance.FieldError{Field: name,
				Message: "unknown query parameter (want " + strings.Join(listParams, ", ") + ")"})
		case len(values) > 1:
			problems = append(problems, insurance.FieldError{Field: name, Message: "is given more than once"})
		}
	}
	f := policyclient.ListFilter{State: q.Get("state"), CallbackState: q.Get("callback_state")}
	switch v := q.Get("include"); v {
	case "":
	case "closed":
		f.IncludeClosed = true
	default:
		problems = append(problems, insurance.FieldError{Field: "include", Message: "must be closed"})
	}
	if v := q.Get("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			problems = append(problems, insurance.FieldError{Field: "page_size", Message: "must be an integer"})
		}
		f.PageSize = n
	}
	if v := q.Get("page_token"); v != "" {
		token, err := decodePageToken(v)
		if err != nil {
			problems = append(problems, insurance.FieldError{Field: "page_token", Message: "is not a token this API returned"})
		}
		f.PageToken = token
	}
	if len(problems) > 0 {
		// Map order would shuffle the list from one call to the next.
		slices.SortFunc(problems, func(a, b insurance.FieldError) int { return strings.Compare(a.Field, b.Field) })
		writeError(w, &apiError{status: http.StatusBadRequest, Code: codeInvalidRequest,
			Message: "the query parameters are invalid", Fields: problems})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.callTimeout)
	defer cancel()
	page, err := s.policies.List(ctx, f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, listOf(page))
}

// retry handles POST /v1/policies/{biz_id}/callbacks/retry.
func (s *Server) retry(w http.ResponseWriter, r *http.Request) {
	s.operate(w, r, s.policies.Retry)
}

// skip handles POST /v1/policies/{biz_id}/callbacks/skip.
func (s *Server) skip(w http.ResponseWriter, r *http.Request) {
	s.operate(w, r, s.policies.Skip)
}

func (s *Server) operate(w http.ResponseWriter, r *http.Request,
	action func(ctx context.Context, bizID string, req workflows.OperatorRequest) (workflows.OperatorResult, error)) {
	bizID, ok := pathBizID(w, r)
	if !ok {
		return
	}
	req, apiErr := readOperatorRequest(w, r)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.callTimeout)
	defer cancel()
	res, err := action(ctx, bizID, req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, operatorView{BizID: bizID, Seq: res.Seq, Callback: string(res.Callback), Repeated: res.Repeated})
}

// readOperatorRequest reads the body of an operator action:
// {"seq": N, "reason": "..."}. seq is required: it names the parked
// callback the operator looked at, so that a repeated request can never act
// on the next one. An Idempotency-Key header is the action's request id: a
// re-send with it answers the first one's outcome even after the callback
// has parked again (see workflows.OperatorRequest.RequestID).
func readOperatorRequest(w http.ResponseWriter, r *http.Request) (workflows.OperatorRequest, *apiError) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxOperatorBody))
	if apiErr := bodyError(err, maxOperatorBody); apiErr != nil {
		return workflows.OperatorRequest{}, apiErr
	}
	invalid := func(field, msg string) *apiError {
		return &apiError{status: http.StatusBadRequest, Code: codeInvalidRequest,
			Message: "the body is invalid", Fields: []insurance.FieldError{{Field: field, Message: msg}}}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return workflows.OperatorRequest{}, invalid("seq", `is required: send {"seq": N, "reason": "..."} naming the parked callback`)
	}
	if apiErr := requireJSON(r); apiErr != nil {
		return workflows.OperatorRequest{}, apiErr
	}
	var req struct {
		Seq    *int64 `json:"seq"`
		Reason string `json:"reason"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || dec.More() {
		return workflows.OperatorRequest{}, invalid("body", `must be a JSON object like {"seq": 3, "reason": "..."}`)
	}
	switch {
	case req.Seq == nil:
		return workflows.OperatorRequest{}, invalid("seq", "is required: the seq of the parked callback to act on")
	case *req.Seq < 1:
		return workflows.OperatorRequest{}, invalid("seq", fmt.Sprintf("must be 1 or more, got %d", *req.Seq))
	}
	key := r.Header.Get(headerIdempotencyKey)
	if msg := insurance.CheckRequestID(key); msg != "" {
		return workflows.OperatorRequest{}, invalid(headerIdempotencyKey, msg)
	}
	return workflows.OperatorRequest{Seq: *req.Seq, Reason: req.Reason, By: callerName(r.Context()), RequestID: key}, nil
}

// healthz answers while the process serves HTTP at all.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 only while the dependencies answer, so a load
// balancer sends no events to an instance that could only answer 503.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := s.ready(ctx); err != nil {
			s.logger.LogAttrs(r.Context(), slog.LevelWarn, "not ready", slog.String("error", err.Error()))
			writeError(w, &apiError{status: http.StatusServiceUnavailable, Code: codeUnavailable,
				Message: "not ready: a dependency does not answer"})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// readJSONBody checks the Content-Type and reads a body of at most limit
// bytes.
func readJSONBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *apiError) {
	if apiErr := requireJSON(r); apiErr != nil {
		return nil, apiErr
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if apiErr := bodyError(err, limit); apiErr != nil {
		return nil, apiErr
	}
	return body, nil
}

func bodyError(err error, limit int64) *apiError {
	var tooLarge *http.MaxBytesError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &tooLarge):
		return &apiError{status: http.StatusRequestEntityTooLarge, Code: codePayloadTooLarge,
			Message: fmt.Sprintf("the body is larger than %d bytes", limit)}
	default:
		return &apiError{status: http.StatusBadRequest, Code: codeInvalidRequest, Message: "the body could not be read"}
	}
}

// requireJSON accepts application/json (or a +json type), in UTF-8.
func requireJSON(r *http.Request) *apiError {
	unsupported := &apiError{status: http.StatusUnsupportedMediaType, Code: codeUnsupportedMediaType,
		Message: "Content-Type must be application/json"}
	mediaType, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return unsupported
	}
	if mediaType != "application/json" && !strings.HasSuffix(mediaType, "+json") {
		return unsupported
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		unsupported.Message = "the body must be UTF-8 JSON"
		return unsupported
	}
	return nil
}

// pathBizID returns the {biz_id} of the path, or answers 400 when it
// cannot be a biz_id.
func pathBizID(w http.ResponseWriter, r *http.Request) (string, bool) {
	bizID := r.PathValue("biz_id")
	if problem := bizIDProblem(bizID); problem != nil {
		writeError(w, &apiError{status: http.StatusBadRequest, Code: codeInvalidRequest,
			Message: "the biz_id in the path is invalid", Fields: []insurance.FieldError{*problem}})
		return "", false
	}
	noteBizID(r.Context(), bizID)
	return bizID, true
}

// bizIDProblem applies insurance's own biz_id rule, by validating a result
// that is valid in every other field, so the path and the body can never
// disagree about what a biz_id is.
func bizIDProblem(bizID string) *insurance.FieldError {
	probe := insurance.Result{
		BizID:            bizID,
		Stage:            insurance.StagePreInsure,
		Status:           insurance.StatusSuccess,
		TimeOfOccurrence: "2025-01-01 00:00:00",
		InsuranceType:    insurance.TypeHomeProperty,
	}
	var invalid *insurance.ValidationError
	if err := probe.Validate(); errors.As(err, &invalid) {
		for _, p := range invalid.Problems {
			if p.Field == "biz_id" {
				return &p
			}
		}
	}
	return nil
}

// Probes is an HTTP handler with only GET /healthz and GET /readyz, for a
// process that runs the Temporal worker without the API: Kubernetes and
// compose probe it the same way as an ingress.
func Probes(ready func(ctx context.Context) error, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Server{ready: ready, logger: logger}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	return mux
}
