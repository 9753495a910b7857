package integration

// Every request this suite sends to an ingress, and every answer it gets,
// goes through contractTransport, which checks both against the embedded
// api/openapi.yaml with kin-openapi's openapi3filter. An answer with a
// status, a body field or a header the document does not describe fails
// the request (client.Do returns the violation) and the whole run (TestMain
// reports every violation, even one a polling loop swallowed).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/insuranceflow/insuranceflow/api"
)

// contract is the loaded document and its router.
type contract struct {
	doc    *openapi3.T
	router routers.Router
}

func loadContract() (*contract, error) {
	// POST /v1/imports speaks NDJSON: each line is checked as one element
	// of the array the document describes.
	openapi3filter.RegisterBodyDecoder("application/x-ndjson", decodeNDJSON)
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI())
	if err != nil {
		return nil, fmt.Errorf("load api/openapi.yaml: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("api/openapi.yaml is invalid: %w", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route api/openapi.yaml: %w", err)
	}
	return &contract{doc: doc, router: router}, nil
}

// ContractViolation is what a request or an answer the document does not
// describe comes to.
type ContractViolation struct {
	Method, Path string
	Status       int // 0 for a request that was not sent
	Problem      string
}

func (v *ContractViolation) Error() string {
	what := "request"
	if v.Status != 0 {
		what = "answer " + strconv.Itoa(v.Status)
	}
	return fmt.Sprintf("api/openapi.yaml does not describe the %s of %s %s: %s", what, v.Method, v.Path, v.Problem)
}

var (
	violationsMu sync.Mutex
	violations   []*ContractViolation
)

func recordViolation(v *ContractViolation) error {
	violationsMu.Lock()
	defer violationsMu.Unlock()
	violations = append(violations, v)
	return v
}

// reportViolations prints every violation of the run and says whether
// there was any.
func reportViolations() bool {
	violationsMu.Lock()
	defer violationsMu.Unlock()
	for _, v := range violations {
		fmt.Fprintln(os.Stderr, "integration: contract:", v)
	}
	return len(violations) > 0
}

// skipRequestCheck marks a request a test sends broken on purpose (the
// hostile bodies, a missing seq): its answer is still checked.
type skipRequestCheck struct{}

// deliberatelyInvalid returns req marked as not meeting the document on
// purpose.
func deliberatelyInvalid(req *http.Request) *http.Request {
	return req.WithContext(context.WithValue(req.Context(), skipRequestCheck{}, true))
}

// genericHeaders are set by net/http or on every JSON answer
// (X-Content-Type-Options, described in the document's info); any other
// header must be documented on the answer.
var genericHeaders = []string{"Date", "Content-Length", "Content-Type", "Connection", "Transfer-Encoding", "X-Content-Type-Options"}

type contractTransport struct {
	c    *contract
	next http.RoundTripper
}

func (t contractTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	route, params, rerr := t.c.router.FindRoute(req)
	methodNotAllowed := errors.Is(rerr, routers.ErrMethodNotAllowed)
	if rerr != nil && !methodNotAllowed && !t.isIngress(req.URL) {
		// topsim's /_sim, the worker's /metrics: not the ingress.
		return t.next.RoundTrip(req)
	}
	violation := func(status int, format string, args ...any) error {
		problem := fmt.Sprintf(format, args...)
		if len(problem) > 600 {
			problem = problem[:600] + "…" // kin-openapi's errors can quote the whole schema
		}
		return recordViolation(&ContractViolation{Method: req.Method, Path: req.URL.Path, Status: status, Problem: problem})
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true}
	var in *openapi3filter.RequestValidationInput
	if route != nil {
		in = &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
		if req.Context().Value(skipRequestCheck{}) == nil {
			body, err := peekRequestBody(req)
			if err != nil {
				return nil, err
			}
			check := req.Clone(req.Context())
			check.Body = io.NopCloser(bytes.NewReader(body))
			in.Request = check
			if err := openapi3filter.ValidateRequest(req.Context(), in); err != nil {
				return nil, violation(0, "%v", err)
			}
			in.Request = req
		}
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(raw))

	var documented *openapi3.Response
	switch {
	case route != nil:
		ref := route.Operation.Responses.Status(resp.StatusCode)
		if ref == nil || ref.Value == nil {
			return nil, violation(resp.StatusCode, "status %d is not documented (body %.300s)", resp.StatusCode, raw)
		}
		documented = ref.Value
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Options: opts}
		out.SetBodyBytes(raw)
		if err := openapi3filter.ValidateResponse(req.Context(), out); err != nil {
			return nil, violation(resp.StatusCode, "%v (body %.300s)", err, raw)
		}
	default:
		// A documented path with another method answers the document's
		// MethodNotAllowed; any other path its NotFound (or, under /v1/
		// without a valid token, Unauthorized).
		name, want := "NotFound", http.StatusNotFound
		switch {
		case resp.StatusCode == http.StatusUnauthorized && strings.HasPrefix(req.URL.Path, "/v1/"):
			// Authentication comes first there, so an unauthenticated
			// caller learns nothing about which routes exist.
			name, want = "Unauthorized", http.StatusUnauthorized
		case methodNotAllowed:
			name, want = "MethodNotAllowed", http.StatusMethodNotAllowed
		}
		ref := t.c.doc.Components.Responses[name]
		if resp.StatusCode != want {
			return nil, violation(resp.StatusCode, "want %d (%s) for an undocumented method or path", want, name)
		}
		documented = ref.Value
		if err := checkJSONBody(documented, raw); err != nil {
			return nil, violation(resp.StatusCode, "%v (body %.300s)", err, raw)
		}
	}
	for name := range resp.Header {
		if containsFold(genericHeaders, name) {
			continue
		}
		if !headerDocumented(documented, name) {
			return nil, violation(resp.StatusCode, "header %s is not documented", name)
		}
	}
	return resp, nil
}

func (t contractTransport) isIngress(u *url.URL) bool {
	if env == nil {
		return false
	}
	in, err := url.Parse(env.IngressURL)
	return err == nil && in.Host == u.Host
}

// peekRequestBody reads req's body and puts an unread copy back.
func peekRequestBody(req *http.Request) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	body, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read the request body to check it: %w", err)
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	return body, nil
}

// checkJSONBody checks a JSON answer against resp's application/json schema.
func checkJSONBody(resp *openapi3.Response, raw []byte) error {
	mt := resp.Content.Get("application/json")
	if mt == nil || mt.Schema == nil {
		return errors.New("no application/json schema")
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("body is not JSON: %w", err)
	}
	return mt.Schema.Value.VisitJSON(v)
}

func headerDocumented(resp *openapi3.Response, name string) bool {
	for h := range resp.Headers {
		if strings.EqualFold(h, name) {
			return true
		}
	}
	return false
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// decodeNDJSON reads an NDJSON body as the array of its lines' values.
func decodeNDJSON(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	var out []any
	dec := json.NewDecoder(body)
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("NDJSON line %d: %w", len(out)+1, err)
		}
		out = append(out, v)
	}
}
