// Package simulator owns topsim's behaviour: a strict stand-in for the Taobao
// Open Platform gateway that serves exactly one API,
// taobao.auction.insurance.insuranceresultcallback. It checks every system
// parameter and the signature the way the real gateway does and answers with
// the real envelopes, records each accepted callback as a Receipt, and
// injects faults (ISP errors, latency, hangs, bans, HTTP 502s, business
// rejections) from a seeded source so that a chaos run can be repeated.
//
// The dev stack, the integration tests and the chaos suite drive it over
// HTTP (/router/rest plus the /_sim control endpoints) or in-process through
// Simulator's methods. The topsim command is a thin main around it.
package simulator

import (
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/insuranceflow/insuranceflow/top"
)

// DefaultMaxSkew is the clock error the real gateway tolerates between a
// request's timestamp and its own clock.
const DefaultMaxSkew = top.MaxClockSkew

// Config configures a Simulator. AppKey and AppSecret are the one app the
// simulated gateway knows; everything else is optional.
type Config struct {
	AppKey    string
	AppSecret top.Secret
	// Faults are in force from the start; SetFaults replaces them later.
	Faults Faults
	// Seed makes fault injection and TOP request ids repeatable: the same
	// seed and the same sequence of requests give the same answers.
	Seed int64
	// Receipts, when set, receives every accepted callback as one JSON line,
	// written (and flushed, if the writer can) as it arrives.
	Receipts io.Writer
	// Now is the gateway's clock for timestamp checks, receipts and bans;
	// tests inject it. Default time.Now.
	Now func() time.Time
	// Logger receives one line per request. Default: discard.
	Logger *slog.Logger
	// MaxSkew is the tolerated timestamp error. Default DefaultMaxSkew.
	MaxSkew time.Duration
}

// Simulator is a simulated TOP gateway. It is safe for concurrent use.
type Simulator struct {
	appKey   string
	secret   top.Secret
	now      func() time.Time
	logger   *slog.Logger
	maxSkew  time.Duration
	receipts io.Writer

	mu       sync.Mutex
	faults   activeFaults
	banUntil time.Time
	// banByQPS says the ban in force was started by flow control (QPSLimit),
	// not injected, so its answers count as QPSLimited, not Bans.
	banByQPS bool
	// arrivals are the /router/rest arrival times of the last second, oldest
	// first, for flow control and Stats.MaxPerSecond.
	arrivals []time.Time
	// faultRand decides fault injection: exactly one draw per request that
	// passes the protocol checks, so a seed fixes the whole sequence.
	faultRand *rand.Rand
	// idRand generates TOP request ids; a separate stream so that ids never
	// shift the fault sequence.
	idRand *rand.Rand
	ledger []Receipt
	order  int64
	stats  Stats
}

// New checks cfg and returns a Simulator ready to serve.
func New(cfg Config) (*Simulator, error) {
	var problems []FieldProblem
	if cfg.AppKey == "" {
		problems = append(problems, FieldProblem{Field: "app_key", Problem: "is required"})
	}
	if cfg.AppSecret.Reveal() == "" {
		problems = append(problems, FieldProblem{Field: "app_secret", Problem: "is required"})
	}
	if cfg.MaxSkew < 0 {
		problems = append(problems, FieldProblem{Field: "max_skew", Problem: "must not be negative"})
	}
	faults, err := compileFaults(cfg.Faults)
	var fe *FaultsError
	if errors.As(err, &fe) {
		for _, p := range fe.Problems {
			problems = append(problems, FieldProblem{Field: "faults." + p.Field, Problem: p.Problem})
		}
	}
	if len(problems) > 0 {
		return nil, &ConfigError{Problems: problems}
	}

	s := &Simulator{
		appKey:   cfg.AppKey,
		secret:   cfg.AppSecret,
		now:      cfg.Now,
		logger:   cfg.Logger,
		maxSkew:  cfg.MaxSkew,
		receipts: cfg.Receipts,
		faults:   faults,
		// The two streams use different second words so that they differ
		// even though they share the seed.
		faultRand: rand.New(rand.NewPCG(uint64(cfg.Seed), 0x7f4a7c159e3779b9)),
		idRand:    rand.New(rand.NewPCG(uint64(cfg.Seed), 0x94d049bb133111eb)),
		stats:     Stats{ProtocolErrorsByCode: map[int]int64{}},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.maxSkew == 0 {
		s.maxSkew = DefaultMaxSkew
	}
	if cfg.Faults.BanSeconds > 0 { // an injected ban, not flow control
		s.banUntil = s.now().Add(time.Duration(cfg.Faults.BanSeconds) * time.Second)
	}
	return s, nil
}

// Handler returns the gateway's HTTP routes:
//
//	POST   /router/rest        the TOP gateway (any other method: code 9)
//	GET    /_sim/callbacks     recorded receipts, ?biz_id= filters
//	DELETE /_sim/callbacks     forget every receipt
//	GET    /_sim/faults        faults in force
//	POST   /_sim/faults        change faults (JSON; present fields replace)
//	GET    /_sim/stats         counts by outcome
//	GET    /healthz            liveness
func (s *Simulator) Handler() http.Handler {
	mux := http.NewServeMux()
	// No method in the pattern: the gateway itself answers a wrong method
	// with TOP's code 9, as the real one does, instead of a bare 405.
	mux.HandleFunc("/router/rest", s.serveGateway)
	mux.Handle("GET /_sim/callbacks", s.admin(s.getCallbacks))
	mux.Handle("DELETE /_sim/callbacks", s.admin(s.deleteCallbacks))
	mux.Handle("GET /_sim/faults", s.admin(s.getFaults))
	mux.Handle("POST /_sim/faults", s.admin(s.postFaults))
	mux.Handle("GET /_sim/stats", s.admin(s.getStats))
	mux.Handle("GET /healthz", s.admin(s.getHealth))
	return mux
}

// Callbacks returns the accepted callbacks for bizID ("" for all), in
// arrival order.
func (s *Simulator) Callbacks(bizID string) []Receipt {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Receipt{}
	for _, r := range s.ledger {
		if bizID == "" || r.BizID == bizID {
			out = append(out, r)
		}
	}
	return out
}

// ResetCallbacks forgets every receipt and restarts the arrival order at 1,
// so that a test or a chaos run starts from a clean ledger. It returns how
// many receipts it dropped. Stats and faults are left alone.
func (s *Simulator) ResetCallbacks() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.ledger)
	s.ledger = nil
	s.order = 0
	return n
}

// SetFaults replaces the faults in force with f (defaults filled in). A
// positive f.BanSeconds starts a ban of that length now; zero leaves a
// running ban alone. It returns a *FaultsError, and changes nothing, when f
// is invalid.
func (s *Simulator) SetFaults(f Faults) error {
	compiled, err := compileFaults(f)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.installLocked(compiled, f.BanSeconds, f.BanSeconds > 0)
	return nil
}

// patchFaults applies the fields present in p to the faults in force, as
// one step so that concurrent patches do not undo each other. A present
// ban_seconds sets the ban: N seconds from now, 0 lifts it.
func (s *Simulator) patchFaults(p faultsPatch) (Faults, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults.Faults
	p.applyTo(&f)
	compiled, err := compileFaults(f)
	if err != nil {
		return Faults{}, err
	}
	s.installLocked(compiled, f.BanSeconds, p.BanSeconds != nil)
	return compiled.Faults, nil
}

func (s *Simulator) installLocked(f activeFaults, banSeconds int, setBan bool) {
	s.faults = f
	if setBan {
		s.banUntil = s.now().Add(time.Duration(banSeconds) * time.Second)
		s.banByQPS = false
	}
	s.logger.Info("faults changed", slog.Any("faults", f.Faults), slog.Int("ban_seconds_left", s.banSecondsLeftLocked()))
}

// Faults returns the faults in force, defaults filled in. BanSeconds is
// always zero (a ban is a trigger, not a setting); Stats reports what is
// left of a running ban.
func (s *Simulator) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults.Faults
}

// Stats returns the request counts so far and what is left of a ban.
func (s *Simulator) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.ProtocolErrorsByCode = make(map[int]int64, len(s.stats.ProtocolErrorsByCode))
	for k, v := range s.stats.ProtocolErrorsByCode {
		st.ProtocolErrorsByCode[k] = v
	}
	st.BanSecondsLeft = s.banSecondsLeftLocked()
	return st
}

// banSecondsLeftLocked is the ban's remaining whole seconds, rounded up so
// that a ban never reads "0 more seconds" while it still holds.
func (s *Simulator) banSecondsLeftLocked() int {
	left := s.banUntil.Sub(s.now())
	if left <= 0 {
		return 0
	}
	return int((left + time.Second - 1) / time.Second)
}
