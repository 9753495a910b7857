package simulator

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/insuranceflow/insuranceflow/top"
)

// maxFormBytes caps a /router/rest body. The largest valid callback is a
// few KiB; anything near this is not a callback.
const maxFormBytes = 1 << 20

// Sub-codes of the faults the simulator injects; the protocol checks' own
// are top's. Like those, they follow what the real gateway is seen to send.
const (
	subCodeBan = "accesscontrol.limited-by-app-access-count"
	// subCodeQPS is what TOP answers when an app calls one API more often
	// than its per-second limit allows.
	subCodeQPS            = "accesscontrol.limited-by-api-access-count"
	subCodeServiceTimeout = "isp.remote-service-timeout"
)

// exchange is what one /router/rest request came to; it feeds the stats and
// the request's log line.
type exchange struct {
	outcome      Outcome
	code         int // TOP error code answered, 0 for none
	subCode      string
	httpStatus   int // 0 when the client left before an answer
	bizID        string
	signMethod   string
	topRequestID string
	clientGone   bool
}

func (s *Simulator) serveGateway(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	overLimit := s.arrive()
	ex := s.exchange(w, r, overLimit)
	s.count(ex.outcome, ex.code)
	attrs := []slog.Attr{
		slog.String("method", r.Method),
		// Only the path: the query string may carry the signature.
		slog.String("path", r.URL.Path),
		slog.String("outcome", string(ex.outcome)),
		slog.Int("code", ex.code),
		slog.Int("http_status", ex.httpStatus),
		slog.String("biz_id", ex.bizID),
		slog.Duration("duration", time.Since(start)),
		slog.String("top_request_id", ex.topRequestID),
	}
	if ex.subCode != "" {
		attrs = append(attrs, slog.String("sub_code", ex.subCode))
	}
	if ex.signMethod != "" {
		attrs = append(attrs, slog.String("sign_method", ex.signMethod))
	}
	if ex.clientGone {
		attrs = append(attrs, slog.Bool("client_gone", true))
	}
	s.logger.LogAttrs(r.Context(), slog.LevelInfo, "top request", attrs...)
}

// exchange answers one gateway request: latency, protocol checks, faults,
// the reject pattern, and finally a receipt and call_success=true.
func (s *Simulator) exchange(w http.ResponseWriter, r *http.Request, overLimit bool) exchange {
	ctx := r.Context()
	ex := exchange{topRequestID: s.newRequestID()}

	if latency := s.Faults().Latency; latency > 0 && !sleep(ctx, latency) {
		ex.outcome, ex.clientGone = OutcomeAbandoned, true
		return ex
	}

	c, rejection := s.check(w, r)
	if rejection != nil {
		return s.answerError(w, ex, OutcomeProtocolError, *rejection)
	}
	ex.bizID, ex.signMethod = c.Result.BizID, string(c.SignMethod)

	d := s.decide(c.Result.BizID, overLimit)
	switch d.verdict {
	case verdictQPSLimited:
		return s.answerError(w, ex, OutcomeQPSLimited, top.ErrorResponse{
			Code:    top.CodeAppCallLimited,
			SubCode: subCodeQPS,
			SubMsg:  fmt.Sprintf("This ban will last for %d more seconds", d.banLeft),
		})
	case verdictBan:
		return s.answerError(w, ex, OutcomeBan, top.ErrorResponse{
			Code:    top.CodeAppCallLimited,
			SubCode: subCodeBan,
			SubMsg:  fmt.Sprintf("This ban will last for %d more seconds", d.banLeft),
		})
	case verdictHang:
		ex.outcome = OutcomeHang
		if !sleep(ctx, d.hangFor) {
			ex.clientGone = true
			return ex
		}
		// A client patient enough to outlast the hang gets what the gateway
		// says when the service behind it never answered.
		return s.answerError(w, ex, OutcomeHang, top.ErrorResponse{
			Code:    top.CodeRemoteServiceError,
			SubCode: subCodeServiceTimeout,
			SubMsg:  fmt.Sprintf("the insurance result service did not answer within %v", d.hangFor),
		})
	case verdict502:
		ex.outcome, ex.httpStatus = OutcomeHTTP502, http.StatusBadGateway
		writeBadGateway(w)
		return ex
	case verdictISP:
		return s.answerError(w, ex, OutcomeISPError, top.ErrorResponse{
			Code:    top.CodeRemoteServiceError,
			SubCode: d.ispSubCode,
			SubMsg:  "the insurance result service failed; the call may be retried later",
		})
	case verdictReject:
		ex.outcome = OutcomeRejected
		return s.answerSuccess(w, ex, c.Simplify, top.CallbackResponse{
			CallSuccess: false,
			FailCode:    d.failCode,
			FailMessage: d.failMessage,
		})
	}

	s.record(Receipt{
		BizID:        c.Result.BizID,
		RequestID:    c.Result.RequestID,
		Stage:        c.Result.Stage,
		Status:       c.Result.Status,
		StageName:    c.Result.Stage.String(),
		StatusName:   c.Result.Status.String(),
		ReceivedAt:   s.now(),
		SignMethod:   string(c.SignMethod),
		TOPRequestID: ex.topRequestID,
		Payload:      []byte(c.Payload),
		TraceParent:  r.Header.Get("traceparent"),
	})
	ex.outcome = OutcomeAccepted
	return s.answerSuccess(w, ex, c.Simplify, top.CallbackResponse{CallSuccess: true})
}

// check runs the gateway's checks in the gateway's order (top.ReadParams,
// top.Gateway.Verify, top.ParseArguments) and returns the first violation as
// the error it answers with.
func (s *Simulator) check(w http.ResponseWriter, r *http.Request) (top.Call, *top.ErrorResponse) {
	params, rej := top.ReadParams(w, r, maxFormBytes)
	if rej == nil {
		gw := top.Gateway{AppKey: s.appKey, AppSecret: s.secret, MaxSkew: s.maxSkew, Now: s.now}
		rej = gw.Verify(params)
	}
	if rej != nil {
		return top.Call{}, rej
	}
	return top.ParseArguments(params)
}

func (s *Simulator) answerError(w http.ResponseWriter, ex exchange, o Outcome, e top.ErrorResponse) exchange {
	if e.Msg == "" {
		e.Msg = top.CodeMessage(e.Code)
	}
	e.RequestID = ex.topRequestID
	ex.outcome, ex.code, ex.subCode, ex.httpStatus = o, e.Code, e.SubCode, http.StatusOK
	writeJSON(w, http.StatusOK, top.ErrorBody(e))
	return ex
}

func (s *Simulator) answerSuccess(w http.ResponseWriter, ex exchange, simplify bool, resp top.CallbackResponse) exchange {
	resp.RequestID = ex.topRequestID
	ex.httpStatus = http.StatusOK
	writeJSON(w, http.StatusOK, top.SuccessBody(top.APIMethod, simplify, resp))
	return ex
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body) // the client hanging up is not the gateway's problem
}

// badGatewayPage is what the gateway's front proxy serves when the service
// behind it fails: HTML, not JSON, so a client must not try to parse it.
const badGatewayPage = `<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>Tengine</center>
</body>
</html>
`

func writeBadGateway(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html")
	w.Header().Set("Content-Length", strconv.Itoa(len(badGatewayPage)))
	w.WriteHeader(http.StatusBadGateway)
	_, _ = w.Write([]byte(badGatewayPage))
}

// newRequestID returns a TOP-style request id: 13 lower-case base-36
// characters, drawn from the seeded id stream.
func (s *Simulator) newRequestID() string {
	s.mu.Lock()
	n := s.idRand.Uint64()
	s.mu.Unlock()
	id := strconv.FormatUint(n, 36)
	return strings.Repeat("0", 13-len(id)) + id
}

// sleep waits for d or until ctx ends, and reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
