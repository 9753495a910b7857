package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/insuranceflow/insuranceflow/topsim/simulator"
)

// ingressClient is the business system's HTTP client for the ingress.
type ingressClient struct {
	base  string
	token string
	http  *http.Client
}

func newIngressClient(base, token string) *ingressClient {
	return &ingressClient{base: base, token: token, http: &http.Client{
		// Above the ingress's own 20 s bound on a Temporal call, so a slow
		// answer arrives as the ingress's 503 rather than our timeout.
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        128,
			MaxIdleConnsPerHost: 128,
			IdleConnTimeout:     30 * time.Second,
		},
	}}
}

// report posts one insurance-result event.
func (c *ingressClient) report(ctx context.Context, body []byte) (reply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/insurance-results", bytes.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.do(req)
}

// policyStatus is the part of GET /v1/policies/{biz_id} the checks read.
type policyStatus struct {
	BizID         string `json:"biz_id"`
	State         string `json:"state"`
	Endorsements  int    `json:"endorsements"`
	CallbackState string `json:"callback_state"`
	LastSeq       int64  `json:"last_seq"`
}

// status reads a policy as its workflow knows it. A 503 (the query
// outlived the ingress's Temporal call timeout on a loaded machine) is
// asked again for up to 30 s, as any client of the API would.
func (c *ingressClient) status(ctx context.Context, bizID string) (policyStatus, error) {
	var rep reply
	for deadline := time.Now().Add(30 * time.Second); ; {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/policies/"+url.PathEscape(bizID), nil)
		if err != nil {
			return policyStatus{}, err
		}
		if rep, err = c.do(req); err != nil {
			return policyStatus{}, err
		}
		if rep.Status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			break
		}
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return policyStatus{}, err
		}
	}
	if rep.Status != http.StatusOK {
		return policyStatus{}, fmt.Errorf("GET /v1/policies/%s: HTTP %d: %.200s", bizID, rep.Status, rep.Body)
	}
	var st policyStatus
	if err := json.Unmarshal(rep.Body, &st); err != nil {
		return policyStatus{}, fmt.Errorf("GET /v1/policies/%s: decode: %w", bizID, err)
	}
	return st, nil
}

func (c *ingressClient) do(req *http.Request) (reply, error) {
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, fmt.Errorf("read answer: %w", err)
	}
	return reply{Status: resp.StatusCode, Body: raw, RetryAfter: retryAfter(resp.Header.Get("Retry-After"))}, nil
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// simStats is topsim's GET /_sim/stats answer.
type simStats = simulator.Stats

// topsimStats reads topsim's counters.
func topsimStats(ctx context.Context, client *http.Client, topsimURL string) (simStats, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, topsimURL+"/_sim/stats", nil)
	if err != nil {
		return simStats{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return simStats{}, fmt.Errorf("GET /_sim/stats: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return simStats{}, fmt.Errorf("GET /_sim/stats: HTTP %d", resp.StatusCode)
	}
	var st simStats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return simStats{}, fmt.Errorf("GET /_sim/stats: decode: %w", err)
	}
	return st, nil
}
