package simulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"time"
)

// Defaults filled in when a Faults field is left zero.
const (
	DefaultHangDuration      = 40 * time.Second // past the client's 30 s read timeout
	DefaultRejectFailCode    = "BIZ_NOT_FOUND"
	DefaultRejectFailMessage = "biz_id not found"
	// DefaultQPSBanSeconds is how long the flow-control ban lasts that a
	// call over QPSLimit starts: TOP's per-second limits ban for seconds,
	// not minutes.
	DefaultQPSBanSeconds = 1
)

// Faults are the misbehaviours the simulated gateway injects into requests
// that pass every protocol check. Rates are fractions of those requests in
// [0,1]; HangRate, HTTP502Rate and ISPErrorRate are exclusive slices of one
// draw per request, so together they may not exceed 1. A running ban beats
// every other fault; the reject pattern applies to whatever no fault took.
//
// In JSON the names are snake_case and durations are Go duration strings
// ("250ms"); a bare number is read as milliseconds.
type Faults struct {
	// ISPErrorRate is the fraction answered with code 15 and an isp.* sub_code.
	ISPErrorRate float64 `json:"isp_error_rate"`
	// Latency is added to every /router/rest request, valid or not.
	Latency time.Duration `json:"latency"`
	// HangRate is the fraction that hang until HangDuration passes (then code
	// 15 isp.remote-service-timeout) or the client goes away.
	HangRate     float64       `json:"hang_rate"`
	HangDuration time.Duration `json:"hang_duration"`
	// BanSeconds is a trigger, not a setting: a positive value starts a ban
	// of that many seconds now, during which every request is answered with
	// code 7 "App Call Limited" and a sub_msg counting the seconds down.
	BanSeconds int `json:"ban_seconds,omitempty"`
	// HTTP502Rate is the fraction answered with HTTP 502 and an HTML body,
	// as the gateway's front proxy does when the service behind it fails.
	HTTP502Rate float64 `json:"http502_rate"`
	// RejectBizIDPattern is a regular expression; callbacks whose biz_id
	// matches it are answered call_success=false with RejectFailCode and
	// RejectFailMessage, and are not recorded.
	RejectBizIDPattern string `json:"reject_biz_id_pattern"`
	RejectFailCode     string `json:"reject_fail_code"`
	RejectFailMessage  string `json:"reject_fail_message"`
	// QPSLimit, when positive, is TOP's flow control: a valid call that makes
	// more than QPSLimit calls (valid or not, answered or banned) arrive
	// within one second — any sliding second, not calendar seconds — is
	// answered code 7 with the sub_code accesscontrol.limited-by-api-access-count
	// and starts a ban of QPSBanSeconds. It is a setting, unlike BanSeconds.
	QPSLimit      int `json:"qps_limit"`
	QPSBanSeconds int `json:"qps_ban_seconds"`
}

// faultsJSON is the wire form of Faults: durations as strings.
type faultsJSON struct {
	ISPErrorRate       float64      `json:"isp_error_rate"`
	Latency            jsonDuration `json:"latency"`
	HangRate           float64      `json:"hang_rate"`
	HangDuration       jsonDuration `json:"hang_duration"`
	BanSeconds         int          `json:"ban_seconds,omitempty"`
	HTTP502Rate        float64      `json:"http502_rate"`
	RejectBizIDPattern string       `json:"reject_biz_id_pattern"`
	RejectFailCode     string       `json:"reject_fail_code"`
	RejectFailMessage  string       `json:"reject_fail_message"`
	QPSLimit           int          `json:"qps_limit"`
	QPSBanSeconds      int          `json:"qps_ban_seconds"`
}

// faultsPatch is a partial Faults: nil means "not present, keep".
type faultsPatch struct {
	ISPErrorRate       *float64      `json:"isp_error_rate"`
	Latency            *jsonDuration `json:"latency"`
	HangRate           *float64      `json:"hang_rate"`
	HangDuration       *jsonDuration `json:"hang_duration"`
	BanSeconds         *int          `json:"ban_seconds"`
	HTTP502Rate        *float64      `json:"http502_rate"`
	RejectBizIDPattern *string       `json:"reject_biz_id_pattern"`
	RejectFailCode     *string       `json:"reject_fail_code"`
	RejectFailMessage  *string       `json:"reject_fail_message"`
	QPSLimit           *int          `json:"qps_limit"`
	QPSBanSeconds      *int          `json:"qps_ban_seconds"`
}

// MarshalJSON writes durations as Go duration strings.
func (f Faults) MarshalJSON() ([]byte, error) {
	return json.Marshal(faultsJSON{
		ISPErrorRate:       f.ISPErrorRate,
		Latency:            jsonDuration(f.Latency),
		HangRate:           f.HangRate,
		HangDuration:       jsonDuration(f.HangDuration),
		BanSeconds:         f.BanSeconds,
		HTTP502Rate:        f.HTTP502Rate,
		RejectBizIDPattern: f.RejectBizIDPattern,
		RejectFailCode:     f.RejectFailCode,
		RejectFailMessage:  f.RejectFailMessage,
		QPSLimit:           f.QPSLimit,
		QPSBanSeconds:      f.QPSBanSeconds,
	})
}

// UnmarshalJSON overwrites the fields present in data and keeps the others,
// so that decoding onto the faults in force applies a partial update. An
// unknown field is an error: a misspelt fault must not silently do nothing.
func (f *Faults) UnmarshalJSON(data []byte) error {
	p, err := decodeFaultsPatch(data)
	if err != nil {
		return err
	}
	p.applyTo(f)
	return nil
}

func decodeFaultsPatch(data []byte) (faultsPatch, error) {
	var p faultsPatch
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return faultsPatch{}, fmt.Errorf("decode faults: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return faultsPatch{}, errors.New("decode faults: unexpected data after the JSON object")
	}
	return p, nil
}

func (p faultsPatch) applyTo(f *Faults) {
	setIf(&f.ISPErrorRate, p.ISPErrorRate)
	setIf(&f.HangRate, p.HangRate)
	setIf(&f.HTTP502Rate, p.HTTP502Rate)
	setIf(&f.BanSeconds, p.BanSeconds)
	setIf(&f.RejectBizIDPattern, p.RejectBizIDPattern)
	setIf(&f.RejectFailCode, p.RejectFailCode)
	setIf(&f.RejectFailMessage, p.RejectFailMessage)
	setIf(&f.QPSLimit, p.QPSLimit)
	setIf(&f.QPSBanSeconds, p.QPSBanSeconds)
	if p.Latency != nil {
		f.Latency = time.Duration(*p.Latency)
	}
	if p.HangDuration != nil {
		f.HangDuration = time.Duration(*p.HangDuration)
	}
}

func setIf[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}

// jsonDuration reads a Go duration string or a number of milliseconds.
type jsonDuration time.Duration

func (d jsonDuration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *jsonDuration) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: want a Go duration like \"250ms\" or a number of milliseconds", s)
		}
		*d = jsonDuration(v)
		return nil
	}
	ms, err := strconv.ParseFloat(string(data), 64)
	if err != nil {
		return fmt.Errorf("duration %s: want a Go duration like \"250ms\" or a number of milliseconds", data)
	}
	*d = jsonDuration(time.Duration(ms * float64(time.Millisecond)))
	return nil
}

// activeFaults is a validated Faults with defaults filled in and the reject
// pattern compiled.
type activeFaults struct {
	Faults
	reject *regexp.Regexp
}

// compileFaults validates f and fills in its defaults. BanSeconds is
// dropped: it has been acted upon by the caller, not kept.
func compileFaults(f Faults) (activeFaults, error) {
	var problems []FieldProblem
	bad := func(field, problem string) {
		problems = append(problems, FieldProblem{Field: field, Problem: problem})
	}
	rates := []struct {
		name string
		v    float64
	}{{"isp_error_rate", f.ISPErrorRate}, {"hang_rate", f.HangRate}, {"http502_rate", f.HTTP502Rate}}
	sum := 0.0
	for _, r := range rates {
		if !(r.v >= 0 && r.v <= 1) { // also catches NaN
			bad(r.name, fmt.Sprintf("is %v, want a fraction between 0 and 1", r.v))
			continue
		}
		sum += r.v
	}
	// The three rates share one draw, so they cannot claim more than all of it.
	if sum > 1+1e-9 {
		bad("isp_error_rate+hang_rate+http502_rate", fmt.Sprintf("add up to %v, want at most 1", sum))
	}
	if f.Latency < 0 {
		bad("latency", "must not be negative")
	}
	if f.HangDuration < 0 {
		bad("hang_duration", "must not be negative")
	}
	if f.BanSeconds < 0 {
		bad("ban_seconds", "must not be negative")
	}
	if f.QPSLimit < 0 {
		bad("qps_limit", "must not be negative (0 is no limit)")
	}
	if f.QPSBanSeconds < 0 {
		bad("qps_ban_seconds", "must not be negative")
	}
	var reject *regexp.Regexp
	if f.RejectBizIDPattern != "" {
		re, err := regexp.Compile(f.RejectBizIDPattern)
		if err != nil {
			bad("reject_biz_id_pattern", fmt.Sprintf("does not compile: %v", err))
		}
		reject = re
	}
	if len(problems) > 0 {
		return activeFaults{}, &FaultsError{Problems: problems}
	}
	f.BanSeconds = 0
	if f.HangDuration == 0 {
		f.HangDuration = DefaultHangDuration
	}
	if f.RejectFailCode == "" {
		f.RejectFailCode = DefaultRejectFailCode
	}
	if f.RejectFailMessage == "" {
		f.RejectFailMessage = DefaultRejectFailMessage
	}
	if f.QPSBanSeconds == 0 {
		f.QPSBanSeconds = DefaultQPSBanSeconds
	}
	return activeFaults{Faults: f, reject: reject}, nil
}

// verdict is what fault injection makes of one valid request.
type verdict int

const (
	verdictPass verdict = iota + 1
	verdictBan
	verdictQPSLimited // over QPSLimit, or during the ban that started
	verdictHang
	verdict502
	verdictISP
	verdictReject
)

// decision carries a verdict and what its answer needs.
type decision struct {
	verdict     verdict
	banLeft     int           // verdictBan
	hangFor     time.Duration // verdictHang
	ispSubCode  string        // verdictISP
	failCode    string        // verdictReject
	failMessage string        // verdictReject
}

// ispSubCodes are the platform-fault sub_codes an injected ISP error picks
// from; all start with "isp." so a client that retries on the prefix, as
// the platform advises, retries every one of them.
var ispSubCodes = [...]string{"isp.remote-service-error", "isp.remote-service-timeout"}

// decide draws once from the seeded source and turns the draw, the ban,
// flow control and the reject pattern into a verdict for a valid callback
// about bizID; overLimit says its arrival went over QPSLimit (see arrive).
func (s *Simulator) decide(bizID string, overLimit bool) decision {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Draw first, whatever the outcome, so that the n-th valid request
	// always meets the n-th number of the seeded sequence.
	u := s.faultRand.Float64()
	f := s.faults
	if left := s.banSecondsLeftLocked(); left > 0 {
		if s.banByQPS {
			return decision{verdict: verdictQPSLimited, banLeft: left}
		}
		return decision{verdict: verdictBan, banLeft: left}
	}
	if overLimit {
		s.banUntil = s.now().Add(time.Duration(f.QPSBanSeconds) * time.Second)
		s.banByQPS = true
		return decision{verdict: verdictQPSLimited, banLeft: s.banSecondsLeftLocked()}
	}
	switch {
	case u < f.HangRate:
		return decision{verdict: verdictHang, hangFor: f.HangDuration}
	case u < f.HangRate+f.HTTP502Rate:
		return decision{verdict: verdict502}
	case u < f.HangRate+f.HTTP502Rate+f.ISPErrorRate:
		return decision{verdict: verdictISP, ispSubCode: ispSubCodes[s.faultRand.IntN(len(ispSubCodes))]}
	}
	if f.reject != nil && f.reject.MatchString(bizID) {
		return decision{verdict: verdictReject, failCode: f.RejectFailCode, failMessage: f.RejectFailMessage}
	}
	return decision{verdict: verdictPass}
}
