package codec

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/converter"
)

// PathPrefix is where Handler serves: POST PathPrefix+"encode" and
// PathPrefix+"decode". The Temporal UI's codec endpoint is the prefix
// without its trailing slash, e.g. http://127.0.0.1:8080/codec.
const PathPrefix = "/codec/"

// DefaultCORSOrigins are the origins of the Temporal dev server's UI.
var DefaultCORSOrigins = []string{"http://localhost:8233", "http://127.0.0.1:8233"}

// DefaultMaxBodyBytes bounds a request: the UI sends a few payloads at a
// time, each at most Temporal's 2 MiB payload limit.
const DefaultMaxBodyBytes = 8 << 20

// preflightMaxAge is how long a browser may cache a preflight answer.
const preflightMaxAge = 10 * time.Minute

// allowedHeaders are the request headers the UI sends: the JSON body's
// type, the operator's token and the namespace being viewed.
const allowedHeaders = "Content-Type, Authorization, X-Namespace"

// ServerConfig configures a Server.
type ServerConfig struct {
	// Codec encodes and decodes; required.
	Codec converter.PayloadCodec
	// AllowedOrigins are the browser origins (scheme://host[:port]) that
	// may call the endpoint, i.e. the Temporal UI's. A request with an
	// Origin header not listed is refused; requests without one (curl,
	// the SDK's remote codec) are not browser requests and pass.
	AllowedOrigins []string
	// Tokens, when any, are the accepted bearer tokens: every encode or
	// decode must carry "Authorization: Bearer <token>". None means no
	// authentication, for a codec endpoint reachable only by operators.
	Tokens []string
	// MaxBodyBytes bounds a request body; DefaultMaxBodyBytes when zero.
	MaxBodyBytes int64
	Logger       *slog.Logger // slog.Default() when nil
}

// ConfigError is returned by NewServer and ParseOrigins for an unusable
// setting.
type ConfigError struct {
	Field   string
	Problem string
}

func (e *ConfigError) Error() string { return fmt.Sprintf("codec server %s: %s", e.Field, e.Problem) }

// Server is the remote codec endpoint the Temporal UI (and `temporal
// --codec-endpoint`) call to see payloads decrypted. Create it with
// NewServer.
type Server struct {
	codec   http.Handler
	origins []string
	tokens  [][sha256.Size]byte
	maxBody int64
	logger  *slog.Logger
}

// NewServer checks cfg and returns a Server.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Codec == nil {
		return nil, &ConfigError{Field: "Codec", Problem: "is required"}
	}
	for _, o := range cfg.AllowedOrigins {
		if err := checkOrigin(o); err != nil {
			return nil, err
		}
	}
	s := &Server{
		codec:   converter.NewPayloadCodecHTTPHandler(cfg.Codec),
		origins: slices.Clone(cfg.AllowedOrigins),
		maxBody: cfg.MaxBodyBytes,
		logger:  cfg.Logger,
	}
	for i, t := range cfg.Tokens {
		if strings.TrimSpace(t) == "" {
			// The position, never the value: the others are secrets.
			return nil, &ConfigError{Field: "Tokens", Problem: fmt.Sprintf("token %d is empty", i+1)}
		}
		s.tokens = append(s.tokens, sha256.Sum256([]byte(t)))
	}
	if s.maxBody < 0 {
		return nil, &ConfigError{Field: "MaxBodyBytes", Problem: fmt.Sprintf("%d is negative", s.maxBody)}
	}
	if s.maxBody == 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	return s, nil
}

// ParseOrigins splits a comma-separated list of origins and checks each.
func ParseOrigins(list string) ([]string, error) {
	var out []string
	for _, o := range strings.Split(list, ",") {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		if err := checkOrigin(o); err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

// checkOrigin accepts what a browser sends as Origin: scheme, host and
// port, nothing else. A wildcard is refused: with credentials allowed it
// would let any web page an operator visits decrypt payloads.
func checkOrigin(o string) error {
	bad := func(problem string) error {
		return &ConfigError{Field: "AllowedOrigins", Problem: fmt.Sprintf("%q %s", o, problem)}
	}
	if o == "*" {
		return bad("is not allowed; list the Temporal UI's origins, e.g. http://localhost:8233")
	}
	u, err := url.Parse(o)
	switch {
	case err != nil:
		return bad("is not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return bad("must start with http:// or https://")
	case u.Host == "":
		return bad("has no host")
	case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return bad("must be scheme://host[:port] only, as a browser sends it")
	case strings.HasSuffix(o, "/"):
		return bad("must not end with a slash (browsers send the origin without one)")
	}
	return nil
}

// Handler serves POST /codec/encode and /codec/decode in the Temporal
// remote codec protocol ({"payloads": [...]} in protobuf JSON), the CORS
// preflight for both, and a JSON 404 or 405 for anything else under
// /codec/. Mount it at PathPrefix.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, op := range []string{"encode", "decode"} {
		path := PathPrefix + op
		mux.Handle("POST "+path, s.checkOrigin(s.authenticate(s.limitBody(s.codec))))
		mux.HandleFunc("OPTIONS "+path, s.preflight)
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", "POST, OPTIONS")
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed",
				fmt.Sprintf("method %s is not allowed here (allowed: POST, OPTIONS)", r.Method))
		})
	}
	mux.HandleFunc(PathPrefix, func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint (the codec serves "+PathPrefix+"encode and "+PathPrefix+"decode)")
	})
	return s.logged(mux)
}

func (s *Server) allowed(origin string) bool { return slices.Contains(s.origins, origin) }

// checkOrigin refuses a browser request from an origin not listed, and
// lets the listed ones read the answer. The check is on the server and not
// only in the browser because a refused CORS request still runs.
func (s *Server) checkOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Vary", "Origin")
		origin := r.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		if !s.allowed(origin) {
			writeError(w, http.StatusForbidden, "origin_not_allowed", "this origin may not call the codec endpoint (see CODEC_CORS_ORIGINS)")
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Set("Access-Control-Allow-Credentials", "true")
		next.ServeHTTP(w, r)
	})
}

// preflight answers the browser's OPTIONS before a cross-origin POST. It
// never needs a token: browsers send none with a preflight.
func (s *Server) preflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Add("Vary", "Origin")
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	h.Set("Allow", "POST, OPTIONS")
	origin := r.Header.Get("Origin")
	if origin != "" && !s.allowed(origin) {
		writeError(w, http.StatusForbidden, "origin_not_allowed", "this origin may not call the codec endpoint (see CODEC_CORS_ORIGINS)")
		return
	}
	if origin != "" {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", allowedHeaders)
		h.Set("Access-Control-Max-Age", strconv.Itoa(int(preflightMaxAge.Seconds())))
	}
	w.WriteHeader(http.StatusNoContent)
}

// authenticate requires a listed bearer token when tokens are configured.
// Tokens are compared as SHA-256 digests in constant time, against every
// token, so timing reveals neither a token's content nor which matched.
func (s *Server) authenticate(next http.Handler) http.Handler {
	if len(s.tokens) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="insuranceflow-codec"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "an Authorization: Bearer <token> header is required")
			return
		}
		digest := sha256.Sum256([]byte(token))
		found := 0
		for i := range s.tokens {
			found |= subtle.ConstantTimeCompare(digest[:], s.tokens[i][:])
		}
		if found != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="insuranceflow-codec", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "the bearer token is not valid")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// limitBody bounds the body, which the SDK's handler reads whole.
func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > s.maxBody {
			writeError(w, http.StatusRequestEntityTooLarge, "body_too_large",
				fmt.Sprintf("the body is %d bytes; at most %d are accepted", r.ContentLength, s.maxBody))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.maxBody)
		next.ServeHTTP(w, r)
	})
}

// logged writes one line per request: method, path, status, origin and
// duration; never a body, a header value other than Origin, or a token.
func (s *Server) logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		level := slog.LevelDebug
		if rec.status >= 400 {
			level = slog.LevelWarn
		}
		s.logger.LogAttrs(r.Context(), level, "codec request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", rec.status),
			slog.String("origin", r.Header.Get("Origin")),
			slog.Duration("duration", time.Since(start)),
		)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

// writeError answers in the ingress's error shape:
// {"error": {"code": "...", "message": "..."}}.
func writeError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": message}})
}
