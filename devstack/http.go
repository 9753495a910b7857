package devstack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/insuranceflow/insuranceflow/topsim/simulator"
)

// httpClient bounds every call the stack makes; the ingress's own bound on
// a Temporal call is shorter.
var httpClient = &http.Client{
	Timeout: 60 * time.Second,
	Transport: &http.Transport{
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
	},
}

// HTTPError is an unexpected answer from topsim's control API.
type HTTPError struct {
	Method, URL string
	Status      int
	Body        string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("devstack: %s %s: HTTP %d: %s", e.Method, e.URL, e.Status, e.Body)
}

// SetFaults applies a partial faults update to topsim (POST /_sim/faults),
// e.g. {"isp_error_rate":0.3,"ban_seconds":10}.
func (s *Stack) SetFaults(ctx context.Context, faultsJSON string) error {
	_, err := s.simCall(ctx, http.MethodPost, s.TopsimURL+"/_sim/faults", []byte(faultsJSON))
	return err
}

// Callbacks lists the callbacks topsim accepted for bizID, in arrival
// order; "" lists every biz_id's.
func (s *Stack) Callbacks(ctx context.Context, bizID string) ([]Receipt, error) {
	u := s.TopsimURL + "/_sim/callbacks"
	if bizID != "" {
		u += "?biz_id=" + url.QueryEscape(bizID)
	}
	body, err := s.simCall(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	var out struct {
		Callbacks []Receipt `json:"callbacks"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("devstack: decode /_sim/callbacks: %w", err)
	}
	return out.Callbacks, nil
}

func (s *Stack) simCall(ctx context.Context, method, u string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("devstack: %s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("devstack: %s %s: read body: %w", method, u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &HTTPError{Method: method, URL: u, Status: resp.StatusCode, Body: string(bytes.TrimSpace(raw))}
	}
	return raw, nil
}

// Report posts one event to the ingress (POST /v1/insurance-results) with
// the stack's token and returns the status and body as they came.
func (s *Stack) Report(ctx context.Context, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.IngressURL+"/v1/insurance-results", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("devstack: report: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("devstack: report: read body: %w", err)
	}
	return resp.StatusCode, raw, nil
}

// TopsimStats is topsim's request counts (GET /_sim/stats): among them
// qps_limited, the code-7 answers its flow control gave, and
// max_per_second, the most calls it saw within any sliding second.
func (s *Stack) TopsimStats(ctx context.Context) (simulator.Stats, error) {
	body, err := s.simCall(ctx, http.MethodGet, s.TopsimURL+"/_sim/stats", nil)
	if err != nil {
		return simulator.Stats{}, err
	}
	var st simulator.Stats
	if err := json.Unmarshal(body, &st); err != nil {
		return simulator.Stats{}, fmt.Errorf("devstack: decode /_sim/stats: %w", err)
	}
	return st, nil
}
