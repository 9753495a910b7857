package integration

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"go.temporal.io/api/serviceerror"

	"github.com/insuranceflow/insuranceflow/store"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// The hostile-request catalogue: what a careless or malicious client can
// send to POST /v1/insurance-results. Every request must be refused with the
// right 4xx and the API's one error shape before anything starts a workflow,
// reaches the store or calls TOP. Most bodies are an acceptable event with
// exactly one thing wrong, so a check that went missing would let the event
// through and show up at topsim, in Temporal and in the store.

const (
	reportPath = "/v1/insurance-results"
	// sqlProbe is the classic injection probe. A biz_id refuses it by its
	// character set; a policy number is free text, so there it must be
	// stored and sent exactly as given.
	sqlProbe = "x'; DROP TABLE events;--"
	// hostileManager is the personal data in every hostile body: no answer
	// and no worker log line may repeat it.
	hostileManager = "敌意测试人"
	// tenMiB is the size of the streamed body, far past the 64 KiB limit.
	tenMiB = 10 << 20
)

// hostileCase is one request and the refusal it must get.
type hostileCase struct {
	name    string
	method  string            // POST when empty
	headers map[string]string // set over the defaults (bearer token, application/json); "" deletes
	body    []byte
	// stream > 0 sends a body of this many bytes chunked, without a
	// Content-Length, so the server cannot refuse it by its header alone.
	stream int64
	bizIDs []string // every biz_id the request names

	wantStatus int
	wantCode   string
	wantFields []string // invalid_request: exactly these fields, in the API's order
	wantAllow  string   // method_not_allowed: the Allow header
}

// errorBody is the API's one error shape for the codes in this catalogue;
// decoding disallows unknown keys, so anything else in it is a failure.
type errorBody struct {
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Fields  []struct {
			Field   string `json:"field"`
			Message string `json:"message"`
		} `json:"fields"`
	} `json:"error"`
}

func TestHostileRequests(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, env.DatabaseURL)
	if err != nil {
		t.Fatalf("opening the store at the harness's database: %v", err)
	}
	defer st.Close()

	// The totals below compare topsim and the store before and after the
	// whole table, so earlier tests' callbacks must be done first.
	clearFaults(t)
	before := quietSimStats(t)
	policiesBefore := countPolicies(t, st)

	cases := hostileCases()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkRefusal(t, c) })
	}

	// The control: an acceptable event sent the same way gets through,
	// so the checks below can see an event that reached TOP and the store.
	// Its policy number is the SQL probe: free text, kept verbatim, and the
	// events table it names is still there afterwards.
	canary := newBizID("HXOK")
	canaryBody := hostileBody(canary, map[string]string{"policy_number": jsonString(sqlProbe)})
	if resp, raw := sendHostile(t, hostileCase{body: canaryBody}); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("control event: status %d %s, want 202", resp.StatusCode, raw)
	}
	got := waitSimCallbacks(t, canary, 1, 30*time.Second)
	var payload struct {
		PolicyNumber string `json:"policy_number"`
	}
	if err := json.Unmarshal(got[0].Payload, &payload); err != nil || payload.PolicyNumber != sqlProbe {
		t.Errorf("control callback policy_number = %q (%v), want %q verbatim", payload.PolicyNumber, err, sqlProbe)
	}
	eventually(t, 10*time.Second, "control policy in the store", func() (bool, string) {
		p, err := st.Policy(ctx, canary)
		return err == nil && p.PolicyNumber == sqlProbe, fmt.Sprintf("policy %+v, err %v", p, err)
	})
	if evs, err := st.Events(ctx, canary); err != nil || len(evs) != 1 {
		t.Errorf("control events in the store = %d (%v), want 1: the events table must survive the probe", len(evs), err)
	}

	// A hostile event wrongly accepted would be delivered about as fast as
	// the control; waiting for topsim to go quiet again lets stragglers in.
	after := quietSimStats(t)
	if d := after.Accepted - before.Accepted; d != 1 {
		t.Errorf("topsim accepted %d callbacks during the table, want 1 (the control)", d)
	}
	if d := after.Requests - before.Requests; d != 1 {
		t.Errorf("topsim answered %d requests during the table, want 1 (the control)", d)
	}
	if d := countPolicies(t, st) - policiesBefore; d != 1 {
		t.Errorf("the store gained %d policies during the table, want 1 (the control)", d)
	}

	for _, c := range cases {
		for _, bizID := range c.bizIDs {
			checkNothingReached(ctx, t, st, c.name, bizID)
		}
	}
	checkLogHasNo(t, "worker", hostileManager)
}

func hostileCases() []hostileCase {
	id := func() string { return newBizID("HX") }
	var cs []hostileCase
	add := func(c hostileCase) { cs = append(cs, c) }
	invalid := func(name string, body []byte, bizIDs []string, fields ...string) {
		add(hostileCase{name: name, body: body, bizIDs: bizIDs,
			wantStatus: http.StatusBadRequest, wantCode: "invalid_request", wantFields: fields})
	}

	// Not JSON, or not one JSON object.
	b := id()
	invalid("malformed JSON truncated", []byte(`{"biz_id":"`+b+`","stage":1,`), []string{b}, "body")
	b = id()
	invalid("malformed JSON trailing comma", append(bytes.TrimSuffix(hostileBody(b, nil), []byte("}")), ",}"...), []string{b}, "body")
	b = id()
	invalid("malformed JSON single quotes", []byte(`{'biz_id':'`+b+`','stage':1}`), []string{b}, "body")
	b = id()
	invalid("byte order mark before the object", append([]byte("\ufeff"), hostileBody(b, nil)...), []string{b}, "body")
	invalid("empty body", nil, nil, "body")
	invalid("whitespace body", []byte(" \r\n\t "), nil, "body")
	invalid("JSON null", []byte("null"), nil, "body")
	invalid("JSON string", []byte(`"hello"`), nil, "body")
	b = id()
	invalid("JSON array instead of object", []byte("["+string(hostileBody(b, nil))+"]"), []string{b}, "body")
	b = id()
	c := id()
	invalid("two objects back to back", append(hostileBody(b, nil), hostileBody(c, nil)...), []string{b, c}, "body")

	// Wrong types.
	for _, v := range []struct{ name, raw string }{
		{"bool", "true"}, {"float", "1.5"}, {"object", `{"value":1}`}, {"array", "[1]"},
		{"exponent", "1e0"}, {"huge integer", "99999999999999999999"}, {"word", `"pre_insure"`},
	} {
		b := id()
		invalid("stage as "+v.name, hostileBody(b, map[string]string{"stage": v.raw}), []string{b}, "stage")
	}
	digits := newBizID("")
	invalid("biz_id as number", hostileBody(digits, map[string]string{"biz_id": digits}), []string{digits}, "biz_id")
	b = id()
	invalid("insurance_type as null", hostileBody(b, map[string]string{"insurance_type": "null"}), []string{b}, "insurance_type")
	b = id()
	invalid("several wrong types at once",
		hostileBody(b, map[string]string{"stage": "false", "status": "{}", "insurance_type": "[]"}), []string{b},
		"stage", "status", "insurance_type")

	// Size: the limit is 64 KiB exactly, announced or not.
	b = id()
	invalid("body of exactly 64 KiB", padded(b, 64<<10), []string{b}, "pad")
	b = id()
	add(hostileCase{name: "body one byte over 64 KiB", body: padded(b, 64<<10+1), bizIDs: []string{b},
		wantStatus: http.StatusRequestEntityTooLarge, wantCode: "payload_too_large"})
	b = id()
	add(hostileCase{name: "10 MiB chunked body without Content-Length", stream: tenMiB, bizIDs: []string{b},
		body:       []byte(`{"biz_id":"` + b + `","stage":1,"status":1,"pad":"`),
		wantStatus: http.StatusRequestEntityTooLarge, wantCode: "payload_too_large"})

	// Deep nesting: encoding/json stops at 10,000 levels.
	invalid("10k unclosed [", bytes.Repeat([]byte("["), 10_000), nil, "body")
	invalid("10k nested arrays as the body",
		[]byte(strings.Repeat("[", 10_000)+strings.Repeat("]", 10_000)), nil, "body")
	b = id()
	invalid("10k nested arrays as stage",
		hostileBody(b, map[string]string{"stage": strings.Repeat("[", 10_000) + strings.Repeat("]", 10_000)}), []string{b}, "body")
	b = id()
	invalid("deep nesting in an unknown field",
		hostileBody(b, nil, `"extra":`+strings.Repeat("[", 5_000)+strings.Repeat("]", 5_000)), []string{b}, "extra")

	// Encoding and control characters.
	b = id()
	invalid("invalid UTF-8 in biz_id", hostileBody(b, map[string]string{"biz_id": `"` + b + "\xff\""}), []string{b, b + "\xff"}, "body")
	b = id()
	invalid("invalid UTF-8 (encoded surrogate) in policy_number",
		hostileBody(b, map[string]string{"policy_number": "\"P-\xed\xa0\x80\""}), []string{b}, "body")
	b = id()
	invalid("invalid UTF-8 in the account manager's name",
		hostileBody(b, map[string]string{"bank_account_manager_name": "\"\xc0\xaf" + hostileManager + "\""}), []string{b}, "body")
	b = id()
	invalid("escaped lone surrogate in policy_number",
		hostileBody(b, map[string]string{"policy_number": `"P-\ud800"`}), []string{b}, "policy_number")
	b = id()
	invalid("raw control byte inside a string", hostileBody(b, map[string]string{"policy_number": "\"P-\x01\""}), []string{b}, "body")
	b = id()
	invalid("escaped control character in policy_number",
		hostileBody(b, map[string]string{"policy_number": `"P-\u0001"`}), []string{b}, "policy_number")
	b = id()
	invalid("terminal escape in insurance_document",
		hostileBody(b, map[string]string{"insurance_document": `"oss:\u001b[31mred"`}), []string{b}, "insurance_document")
	b = id()
	invalid("NUL in the account manager's name",
		hostileBody(b, map[string]string{"bank_account_manager_name": jsonString(hostileManager + "\x00")}), []string{b},
		"bank_account_manager_name")
	b = id()
	invalid("CRLF in biz_id (log forging)", hostileBody(b, map[string]string{"biz_id": jsonString(b + "\r\nlevel=ERROR")}),
		[]string{b + "\r\nlevel=ERROR"}, "biz_id")

	// Injection-looking identifiers.
	invalid("SQL in biz_id", hostileBody(sqlProbe, nil), []string{sqlProbe}, "biz_id")
	invalid("SQL in biz_id and policy_number (free text, allowed)",
		hostileBody(sqlProbe, map[string]string{"policy_number": jsonString(sqlProbe)}), []string{sqlProbe}, "biz_id")
	b = id()
	invalid("SQL in request_id", hostileBody(b, map[string]string{"request_id": jsonString("1' OR '1'='1")}), []string{b}, "request_id")
	b = id()
	invalid("request_id with spaces", hostileBody(b, map[string]string{"request_id": `"r 1 2"`}), []string{b}, "request_id")
	b = id()
	long := b + strings.Repeat("9", 65-len(b))
	invalid("biz_id of 65 characters", hostileBody(long, map[string]string{"policy_number": `"P-65"`}), []string{long}, "biz_id")

	// Time in a wrong format.
	for _, v := range []struct{ name, value string }{
		{"slashes", "2025/04/08 09:55:00"}, {"ISO 8601", "2025-04-08T09:55:00Z"}, {"date only", "2025-04-08"},
		{"impossible date", "2025-02-30 09:55:00"}, {"unix seconds", "1744076100"},
	} {
		b := id()
		invalid("time_of_occurrence "+v.name, hostileBody(b, map[string]string{"time_of_occurrence": jsonString(v.value)}),
			[]string{b}, "time_of_occurrence")
	}

	// Keys.
	b = id()
	invalid("unknown field", hostileBody(b, nil, `"drop_table":true`), []string{b}, "drop_table")
	b = id()
	invalid("camelCase field name", hostileBody(b, nil, `"bizId":"`+b+`"`), []string{b}, "bizId")
	b = id()
	invalid("__proto__ field", hostileBody(b, nil, `"__proto__":{"admin":true}`), []string{b}, "__proto__")
	b, c = id(), id()
	invalid("duplicate biz_id", hostileBody(b, nil, `"biz_id":"`+c+`"`), []string{b, c}, "biz_id")
	b = id()
	invalid("duplicate stage", hostileBody(b, nil, `"stage":3`), []string{b}, "stage")

	// Authentication: an acceptable event, refused before it is read.
	for _, v := range []struct{ name, header string }{
		{"missing auth", ""}, {"wrong token", "Bearer not-the-token"}, {"basic auth", "Basic aW50ZWdyYXRpb246dG9rZW4="},
		{"token without scheme", testToken}, {"empty bearer", "Bearer "}, {"token in another case", "Bearer " + strings.ToUpper(testToken)},
	} {
		b := id()
		add(hostileCase{name: v.name, headers: map[string]string{"Authorization": v.header},
			body: hostileBody(b, nil), bizIDs: []string{b}, wantStatus: http.StatusUnauthorized, wantCode: "unauthorized"})
	}
	b = id()
	add(hostileCase{name: "wrong method without auth", method: http.MethodPut, headers: map[string]string{"Authorization": ""},
		body: hostileBody(b, nil), bizIDs: []string{b}, wantStatus: http.StatusUnauthorized, wantCode: "unauthorized"})

	// Wrong method on the POST route.
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		b := id()
		add(hostileCase{name: m + " on the POST route", method: m, body: hostileBody(b, nil), bizIDs: []string{b},
			wantStatus: http.StatusMethodNotAllowed, wantCode: "method_not_allowed", wantAllow: http.MethodPost})
	}

	// Wrong content type.
	for _, v := range []struct{ name, ct string }{
		{"missing content type", ""}, {"text/plain", "text/plain"}, {"form encoding", "application/x-www-form-urlencoded"},
		{"multipart", "multipart/form-data; boundary=x"}, {"JSON in Latin-1", "application/json; charset=iso-8859-1"},
		{"unparsable content type", "application/json; ;;"},
	} {
		b := id()
		add(hostileCase{name: "content type " + v.name, headers: map[string]string{"Content-Type": v.ct},
			body: hostileBody(b, nil), bizIDs: []string{b},
			wantStatus: http.StatusUnsupportedMediaType, wantCode: "unsupported_media_type"})
	}
	return cs
}

// checkRefusal sends c and checks the status, the error shape and code,
// the fields named, and that the answer does not repeat personal data.
func checkRefusal(t *testing.T, c hostileCase) {
	t.Helper()
	resp, raw := sendHostile(t, c)
	if resp.StatusCode != c.wantStatus {
		t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, c.wantStatus, snip(raw))
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var e errorBody
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error == nil {
		t.Fatalf("body %s is not the common error shape {\"error\":{\"code\",\"message\",\"fields\"}}: %v", snip(raw), err)
	}
	if e.Error.Code != c.wantCode {
		t.Errorf("error code = %q, want %q (message %q)", e.Error.Code, c.wantCode, e.Error.Message)
	}
	if e.Error.Message == "" {
		t.Errorf("error message is empty")
	}
	var fields []string
	for _, f := range e.Error.Fields {
		fields = append(fields, f.Field)
		if f.Message == "" {
			t.Errorf("field %q has no message", f.Field)
		}
	}
	if !slices.Equal(fields, c.wantFields) {
		t.Errorf("fields = %q, want %q; body %s", fields, c.wantFields, snip(raw))
	}
	if c.wantAllow != "" && resp.Header.Get("Allow") != c.wantAllow {
		t.Errorf("Allow = %q, want %q", resp.Header.Get("Allow"), c.wantAllow)
	}
	if bytes.Contains(raw, []byte(hostileManager)) {
		t.Errorf("the answer repeats the account manager's name: %s", snip(raw))
	}
}

// checkNothingReached checks that bizID got no callback at topsim, no
// workflow in Temporal and no row in the store.
func checkNothingReached(ctx context.Context, t *testing.T, st *store.Store, name, bizID string) {
	t.Helper()
	if got := simCallbacks(t, bizID); len(got) != 0 {
		t.Errorf("%s: topsim received %d callbacks for biz_id %q, want none", name, len(got), bizID)
	}
	if !utf8.ValidString(bizID) || strings.ContainsFunc(bizID, unicode.IsControl) {
		// Temporal cannot even hold this biz_id (protobuf strings are UTF-8,
		// and the workflow ID travels in a gRPC header, printable only), nor
		// the store; topsim, above, was the place it could have leaked to.
		return
	}
	_, err := env.Temporal.DescribeWorkflowExecution(ctx, workflows.WorkflowID(bizID), "")
	var notFound *serviceerror.NotFound
	if !errors.As(err, &notFound) {
		t.Errorf("%s: workflow for biz_id %q: describe error = %v, want not found", name, bizID, err)
	}
	if p, err := st.Policy(ctx, bizID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("%s: store policy for biz_id %q = %+v (error %v), want none", name, bizID, p, err)
	}
	if evs, err := st.Events(ctx, bizID); err != nil || len(evs) != 0 {
		t.Errorf("%s: store events for biz_id %q = %d (error %v), want none", name, bizID, len(evs), err)
	}
}

// sendHostile sends c to the ingress's report route, with the test token
// and a JSON content type unless c says otherwise.
func sendHostile(t *testing.T, c hostileCase) (*http.Response, []byte) {
	t.Helper()
	var body io.Reader
	if c.body != nil {
		body = bytes.NewReader(c.body)
	}
	if c.stream > 0 {
		body = &fillReader{prefix: c.body, left: c.stream}
	}
	req, err := http.NewRequest(cmp.Or(c.method, http.MethodPost), env.IngressURL+reportPath, body)
	if err != nil {
		t.Fatal(err)
	}
	if c.stream > 0 {
		// No length known in advance: the transport sends it chunked, so
		// only counting what arrives can stop it.
		req.ContentLength = -1
		req.TransferEncoding = []string{"chunked"}
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range c.headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	// Hostile on purpose: only the answer is held to the contract.
	resp, err := httpClient.Do(deliberatelyInvalid(req))
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, reportPath, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	return resp, raw
}

// fillReader yields prefix and then 'x' until left bytes in all: a body
// whose length nobody knows in advance.
type fillReader struct {
	prefix []byte
	left   int64
}

func (r *fillReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.left)]
	n := copy(p, r.prefix)
	r.prefix = r.prefix[n:]
	for i := n; i < len(p); i++ {
		p[i] = 'x'
	}
	r.left -= int64(len(p))
	return len(p), nil
}

// hostileBody is an acceptable event for bizID, its members given as raw
// JSON, with some replaced or added (a replacement of "" drops the member)
// and extra raw members appended.
func hostileBody(bizID string, replace map[string]string, extra ...string) []byte {
	members := []struct{ key, value string }{
		{"biz_id", jsonString(bizID)},
		{"policy_number", jsonString("P-" + bizID)},
		{"insurance_company", "1"},
		{"stage", "1"},
		{"status", "1"},
		{"time_of_occurrence", `"2025-04-08 09:55:00"`},
		{"bank_account_manager_name", jsonString(hostileManager)},
		{"insurance_type", "1"},
	}
	var parts []string
	for _, m := range members {
		v, ok := replace[m.key]
		switch {
		case !ok:
			v = m.value
		case v == "":
			continue
		}
		parts = append(parts, jsonString(m.key)+":"+v)
	}
	// Members the acceptable event leaves out (insurance_document,
	// request_id...), in a fixed order.
	for _, k := range slices.Sorted(maps.Keys(replace)) {
		if !slices.ContainsFunc(members, func(m struct{ key, value string }) bool { return m.key == k }) && replace[k] != "" {
			parts = append(parts, jsonString(k)+":"+replace[k])
		}
	}
	parts = append(parts, extra...)
	return []byte("{" + strings.Join(parts, ",") + "}")
}

// padded is an event for bizID with an unknown "pad" member that makes the
// body exactly size bytes.
func padded(bizID string, size int) []byte {
	head := bytes.TrimSuffix(hostileBody(bizID, nil), []byte("}"))
	head = append(head, `,"pad":"`...)
	tail := []byte(`"}`)
	fill := size - len(head) - len(tail)
	return slices.Concat(head, bytes.Repeat([]byte("x"), fill), tail)
}

// jsonString is s as a JSON string; encoding/json keeps invalid UTF-8 out
// by replacing it, so callers wanting raw bytes write them themselves.
func jsonString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // a string always marshals
	}
	return string(b)
}

// simStats is the part of topsim's GET /_sim/stats these checks use.
type simStats struct {
	Requests int64 `json:"requests"`
	Accepted int64 `json:"accepted"`
	InFlight int64 `json:"in_flight"`
}

func getSimStats(t *testing.T) simStats {
	t.Helper()
	resp, err := httpClient.Get(env.TopsimURL + "/_sim/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /_sim/stats: %s", resp.Status)
	}
	var s simStats
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatalf("GET /_sim/stats: %v", err)
	}
	return s
}

// quietSimStats waits until topsim has nothing in flight and has seen no
// request for longer than the worker's longest retry interval (1 s in the
// harness), so no earlier callback is still on its way, and returns its
// stats then.
func quietSimStats(t *testing.T) simStats {
	t.Helper()
	const quiet = 1500 * time.Millisecond
	deadline := time.Now().Add(45 * time.Second)
	last := getSimStats(t)
	since := time.Now()
	for time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
		s := getSimStats(t)
		if s != last || s.InFlight != 0 {
			last, since = s, time.Now()
			continue
		}
		if time.Since(since) >= quiet {
			return s
		}
	}
	t.Fatalf("topsim never went quiet for %v (last stats %+v): callbacks of earlier tests are still running", quiet, last)
	return simStats{}
}

// simCallbacks returns topsim's accepted callbacks for bizID, whatever
// bytes the biz_id holds.
func simCallbacks(t *testing.T, bizID string) []receipt {
	t.Helper()
	resp, err := httpClient.Get(env.TopsimURL + "/_sim/callbacks?" + url.Values{"biz_id": {bizID}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /_sim/callbacks for %q: %s", bizID, resp.Status)
	}
	var out struct {
		Callbacks []receipt `json:"callbacks"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Callbacks
}

func waitSimCallbacks(t *testing.T, bizID string, n int, within time.Duration) []receipt {
	t.Helper()
	var got []receipt
	eventually(t, within, fmt.Sprintf("%d callbacks for %s at topsim", n, bizID), func() (bool, string) {
		got = simCallbacks(t, bizID)
		return len(got) >= n, fmt.Sprintf("%d callbacks", len(got))
	})
	return got
}

// countPolicies counts every policy in the store.
func countPolicies(t *testing.T, st *store.Store) int {
	t.Helper()
	n := 0
	after := ""
	for {
		page, err := st.ListPolicies(context.Background(), store.ListFilter{AfterBizID: after, Limit: store.MaxListLimit})
		if err != nil {
			t.Fatalf("listing the store's policies: %v", err)
		}
		n += len(page)
		if len(page) < store.MaxListLimit {
			return n
		}
		after = page[len(page)-1].BizID
	}
}

// checkLogHasNo fails if the named process's log contains s.
func checkLogHasNo(t *testing.T, name, s string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(env.Dir, name+".log"))
	if err != nil {
		t.Fatalf("reading the %s log: %v", name, err)
	}
	if i := bytes.Index(b, []byte(s)); i >= 0 {
		start := max(0, bytes.LastIndexByte(b[:i], '\n')+1)
		end := len(b)
		if j := bytes.IndexByte(b[i:], '\n'); j >= 0 {
			end = i + j
		}
		t.Errorf("the %s log repeats personal data: %s", name, snip(b[start:end]))
	}
}

// snip bounds a body quoted in a failure message.
func snip(b []byte) string {
	const limit = 300
	if len(b) > limit {
		return fmt.Sprintf("%q... (%d bytes)", b[:limit], len(b))
	}
	return fmt.Sprintf("%q", b)
}
