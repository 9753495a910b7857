package simulator

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/insuranceflow/insuranceflow/insurance"
)

// Receipt is one callback the simulated gateway accepted (answered
// call_success=true), as Taobao would have stored it.
type Receipt struct {
	// Order is the global arrival order, from 1, across every biz_id; tests
	// use it to check that one policy's callbacks arrive in sequence.
	Order     int64            `json:"order"`
	BizID     string           `json:"biz_id"`
	RequestID string           `json:"request_id,omitempty"` // the caller's request_id field
	Stage     insurance.Stage  `json:"stage"`
	Status    insurance.Status `json:"status"`
	// StageName and StatusName spell Stage and Status for people reading
	// the ledger.
	StageName  string    `json:"stage_name"`
	StatusName string    `json:"status_name"`
	ReceivedAt time.Time `json:"received_at"`
	SignMethod string    `json:"sign_method"`
	// TOPRequestID is the request_id the gateway put in its answer.
	TOPRequestID string `json:"top_request_id"`
	// Payload is the insurance_result_a_p_i_request value exactly as signed.
	Payload json.RawMessage `json:"payload"`
	// TraceParent is the request's W3C traceparent header, as a gateway
	// that logs it would see it; empty when the caller sent none.
	TraceParent string `json:"traceparent,omitempty"`
}

// record appends a receipt under the next arrival number and copies it to
// the JSONL sink, both under the lock so that the file's order is the
// arrival order.
func (s *Simulator) record(r Receipt) Receipt {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.order++
	r.Order = s.order
	s.ledger = append(s.ledger, r)
	if s.receipts != nil {
		if err := s.writeReceiptLocked(r); err != nil {
			// The ledger in memory is the source of truth; a broken sink is
			// reported, not allowed to fail the callback.
			s.logger.Warn("receipt sink", slog.String("biz_id", r.BizID), slog.Int64("order", r.Order), slog.Any("error", err))
		}
	}
	return r
}

// flusher is a sink that buffers, like *bufio.Writer.
type flusher interface{ Flush() error }

func (s *Simulator) writeReceiptLocked(r Receipt) error {
	line, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode receipt: %w", err)
	}
	line = append(line, '\n')
	if _, err := s.receipts.Write(line); err != nil {
		return fmt.Errorf("write receipt: %w", err)
	}
	if f, ok := s.receipts.(flusher); ok {
		if err := f.Flush(); err != nil {
			return fmt.Errorf("flush receipt: %w", err)
		}
	}
	return nil
}

// Outcome is what the simulated gateway made of one /router/rest request.
type Outcome string

// The outcomes, as logged and counted.
const (
	OutcomeAccepted      Outcome = "accepted"       // call_success=true, recorded
	OutcomeRejected      Outcome = "rejected"       // call_success=false from the reject pattern
	OutcomeISPError      Outcome = "isp_error"      // injected code 15 isp.*
	OutcomeHang          Outcome = "hang"           // injected hang
	OutcomeBan           Outcome = "ban"            // code 7 during an injected ban
	OutcomeQPSLimited    Outcome = "qps_limited"    // code 7 from flow control: over QPSLimit, or the ban that started
	OutcomeHTTP502       Outcome = "http_502"       // injected HTTP 502
	OutcomeProtocolError Outcome = "protocol_error" // a protocol or argument check failed
	OutcomeAbandoned     Outcome = "abandoned"      // the client left during injected latency
)

// Stats counts /router/rest requests by outcome.
type Stats struct {
	// Requests counts answered (or abandoned) requests; the outcome counts
	// below add up to it. Requests still in progress are in InFlight.
	Requests  int64 `json:"requests"`
	Accepted  int64 `json:"accepted"`
	Rejected  int64 `json:"rejected"`
	ISPErrors int64 `json:"isp_errors"`
	Hangs     int64 `json:"hangs"`
	Bans      int64 `json:"bans"`
	// QPSLimited counts code-7 answers from flow control (Faults.QPSLimit):
	// the call that went over the limit and every call during the ban it
	// started. Injected bans are in Bans.
	QPSLimited     int64 `json:"qps_limited"`
	HTTP502        int64 `json:"http_502"`
	ProtocolErrors int64 `json:"protocol_errors"`
	Abandoned      int64 `json:"abandoned"`
	// InFlight is how many requests are being answered now (hangs included).
	InFlight int64 `json:"in_flight"`
	// MaxPerSecond is the most /router/rest requests that arrived within
	// one second — any sliding second, ending at an arrival — so far,
	// whatever they were answered; with a client that keeps to N calls per
	// second it is at most N.
	MaxPerSecond int `json:"max_per_second"`
	// ProtocolErrorsByCode splits ProtocolErrors by TOP error code.
	ProtocolErrorsByCode map[int]int64 `json:"protocol_errors_by_code"`
	// BanSecondsLeft is what is left of a running ban, 0 when none.
	BanSecondsLeft int `json:"ban_seconds_left"`
}

// arrive marks a request in flight until count is called for it, and
// counts it against flow control: it reports whether this arrival makes
// more than QPSLimit arrivals within the last second (the window is
// (now-1s, now], so two calls exactly one second apart are in different
// windows).
func (s *Simulator) arrive() (overLimit bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.InFlight++
	now := s.now()
	cut := 0
	for cut < len(s.arrivals) && !s.arrivals[cut].After(now.Add(-time.Second)) {
		cut++
	}
	s.arrivals = append(s.arrivals[cut:], now)
	n := len(s.arrivals)
	s.stats.MaxPerSecond = max(s.stats.MaxPerSecond, n)
	return s.faults.QPSLimit > 0 && n > s.faults.QPSLimit
}

// count ends a request that arrive began, under its outcome.
func (s *Simulator) count(o Outcome, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.InFlight--
	s.stats.Requests++
	switch o {
	case OutcomeAccepted:
		s.stats.Accepted++
	case OutcomeRejected:
		s.stats.Rejected++
	case OutcomeISPError:
		s.stats.ISPErrors++
	case OutcomeHang:
		s.stats.Hangs++
	case OutcomeBan:
		s.stats.Bans++
	case OutcomeQPSLimited:
		s.stats.QPSLimited++
	case OutcomeHTTP502:
		s.stats.HTTP502++
	case OutcomeProtocolError:
		s.stats.ProtocolErrors++
		s.stats.ProtocolErrorsByCode[code]++
	case OutcomeAbandoned:
		s.stats.Abandoned++
	}
}
