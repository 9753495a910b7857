// Package temporalconn builds the Temporal client options of every
// insuranceflow program (worker, ingress, starter, bench, chaos, devstack)
// the way the Temporal ecosystem does: with the SDK's environment
// configuration (go.temporal.io/sdk/contrib/envconfig), so the same
// variables and temporal.toml profiles the Temporal CLI reads —
// TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS,
// TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH,
// TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_SERVER_NAME,
// TEMPORAL_PROFILE, TEMPORAL_CONFIG_FILE — connect insuranceflow to a dev
// server, a self-hosted cluster with mutual TLS, or Temporal Cloud. The
// programs then add their own logger, metrics handler and data converter.
package temporalconn

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
)

// Defaults when neither a profile nor the environment names them: the
// local dev server's.
const (
	DefaultAddress   = "127.0.0.1:7233"
	DefaultNamespace = "default"
)

// Environment variable names, as the Temporal CLI and SDKs spell them.
const (
	EnvAddress       = "TEMPORAL_ADDRESS"
	EnvNamespace     = "TEMPORAL_NAMESPACE"
	EnvAPIKey        = "TEMPORAL_API_KEY"
	EnvTLS           = "TEMPORAL_TLS"
	EnvTLSCertPath   = "TEMPORAL_TLS_CLIENT_CERT_PATH"
	EnvTLSKeyPath    = "TEMPORAL_TLS_CLIENT_KEY_PATH"
	EnvTLSCAPath     = "TEMPORAL_TLS_SERVER_CA_CERT_PATH"
	EnvTLSServerName = "TEMPORAL_TLS_SERVER_NAME"
	EnvProfile       = "TEMPORAL_PROFILE"
	EnvConfigFile    = "TEMPORAL_CONFIG_FILE"
	EnvCodecEndpoint = "TEMPORAL_CODEC_ENDPOINT"
	EnvCodecAuth     = "TEMPORAL_CODEC_AUTH"
	// EnvGRPCCompression is insuranceflow's own: "gzip" (the SDK's
	// default) or "none". The SDK gzips every request, and the server
	// answers gzipped, which pays over a WAN (Temporal Cloud) and only
	// costs CPU on both ends over loopback or a LAN.
	EnvGRPCCompression = "TEMPORAL_GRPC_COMPRESSION"
)

// The values of EnvGRPCCompression.
const (
	CompressionGzip = "gzip"
	CompressionNone = "none"
)

// Overrides are settings given on a command line (the starter's flags,
// named as the Temporal CLI names them). A non-empty field wins over the
// profile and the environment.
type Overrides struct {
	Address, Namespace, APIKey         string
	TLSCertPath, TLSKeyPath, TLSCAPath string
	TLSServerName, Profile, ConfigFile string
	CodecEndpoint, CodecAuth           string
}

// Conn is a loaded connection: the SDK options (without logger, metrics or
// converters) and what was chosen, for logs and errors.
type Conn struct {
	Options client.Options
	// Profile is the temporal.toml profile read ("default" when none was
	// asked for; the file may not exist).
	Profile string
	// Codec is the remote codec endpoint (TEMPORAL_CODEC_ENDPOINT or
	// --codec-endpoint), "" when none; Options.DataConverter then uses it.
	CodecEndpoint string
}

// Compression is the gRPC compression of requests: CompressionGzip or
// CompressionNone.
func (c Conn) Compression() string {
	if _, ok := c.Options.ConnectionOptions.GrpcCompression.(*client.GrpcCompressionNone); ok {
		return CompressionNone
	}
	return CompressionGzip
}

// TLS reports whether the connection uses TLS.
func (c Conn) TLS() bool { return c.Options.ConnectionOptions.TLS != nil }

// ClientCert reports whether the connection presents a client certificate
// (mutual TLS).
func (c Conn) ClientCert() bool {
	t := c.Options.ConnectionOptions.TLS
	return t != nil && len(t.Certificates) > 0
}

// APIKey reports whether an API key is sent. The key itself is never
// shown.
func (c Conn) APIKey() bool { return c.Options.Credentials != nil }

// Cloud reports whether the address is Temporal Cloud's.
func (c Conn) Cloud() bool { return IsCloudAddress(c.Options.HostPort) }

// IsCloudAddress reports whether hostPort is a Temporal Cloud endpoint
// (<namespace>.<account>.tmprl.cloud or a regional *.api.temporal.io).
func IsCloudAddress(hostPort string) bool {
	host := hostPort
	if i := strings.LastIndex(host, ":"); i >= 0 {
		host = host[:i]
	}
	return strings.HasSuffix(host, ".tmprl.cloud") || strings.HasSuffix(host, ".api.temporal.io")
}

// LogValue describes the connection for a start-up log line: where, which
// namespace, whether TLS, a client certificate and an API key are used —
// never the key or a certificate's contents.
func (c Conn) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("address", c.Options.HostPort),
		slog.String("namespace", c.Options.Namespace),
		slog.String("profile", c.Profile),
		slog.Bool("tls", c.TLS()),
		slog.Bool("client_cert", c.ClientCert()),
		slog.Bool("api_key_set", c.APIKey()),
		slog.String("codec_endpoint", c.CodecEndpoint),
		slog.String("grpc_compression", c.Compression()),
	)
}

// Error is a connection setting that cannot be used. Setting names the
// variable or flag; Problem never contains a key.
type Error struct {
	Setting string
	Problem string
	Err     error
}

func (e *Error) Error() string {
	msg := e.Setting + ": " + e.Problem
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Lookup is where settings come from: envconfig's interface, so the
// process environment, a map in tests or a command's resolved flags all
// fit.
type Lookup = envconfig.EnvLookup

// OS is the process environment.
var OS Lookup = envconfig.EnvLookupOS

// Map is an explicit environment, KEY=VALUE entries as os.Environ gives
// them; later entries win.
type Map []string

// LookupEnv treats an empty value as unset, as insuranceflow's other
// settings do, so `TEMPORAL_ADDRESS=` in a compose file means "the
// default", not "no address".
func (m Map) LookupEnv(key string) (string, bool) {
	v, ok := "", false
	for _, kv := range m {
		if k, val, found := strings.Cut(kv, "="); found && k == key {
			v, ok = val, true
		}
	}
	return v, ok && v != ""
}

func (m Map) Environ() []string { return m }

// Func adapts a getenv function (empty = unset). It lists no variables,
// so TEMPORAL_GRPC_META_* headers are not read through it.
type Func func(string) string

func (f Func) LookupEnv(key string) (string, bool) {
	v := f(key)
	return v, v != ""
}

func (f Func) Environ() []string { return nil }

// Filter keeps the Temporal connection's variables (TEMPORAL_*) of an
// environment, to hand them on explicitly to a child process.
func Filter(environ []string) []string {
	var out []string
	for _, kv := range environ {
		if strings.HasPrefix(kv, "TEMPORAL_") {
			out = append(out, kv)
		}
	}
	return out
}

// Load reads the profile (TEMPORAL_CONFIG_FILE, else the user's
// temporal.toml if there is one; TEMPORAL_PROFILE, else "default"), applies
// the environment on top, then the overrides, and fills in the dev
// server's address and namespace where nothing named them.
func Load(env Lookup, o Overrides) (Conn, error) {
	if env == nil {
		env = OS
	}
	env = overlay{base: env, over: o}
	req := envconfig.LoadClientConfigProfileOptions{EnvLookup: env, ConfigFileProfile: o.Profile}
	file, _ := env.LookupEnv(EnvConfigFile)
	if file == "" {
		// Without HOME (a container's nobody user) there is no default
		// file to read; that is not an error, only no profile.
		if _, err := envconfig.DefaultConfigFilePath(); err != nil {
			req.DisableFile = true
		}
	}
	profile := o.Profile
	if profile == "" {
		profile, _ = env.LookupEnv(EnvProfile)
	}
	if profile == "" {
		profile = envconfig.DefaultConfigFileProfile
	}
	prof, err := envconfig.LoadClientConfigProfile(req)
	if err != nil {
		return Conn{}, &Error{Setting: EnvConfigFile + "/" + EnvProfile, Problem: "cannot load the Temporal client profile " + profile, Err: err}
	}
	if strings.TrimSpace(prof.Address) == "" {
		prof.Address = DefaultAddress
	}
	if strings.TrimSpace(prof.Namespace) == "" {
		prof.Namespace = DefaultNamespace
	}
	if prof.TLS != nil && !prof.TLS.Disabled && prof.TLS.ServerCACertPath != "" {
		// envconfig would report a missing CA file with the SDK's words;
		// naming the variable helps more.
		if _, err := os.Stat(prof.TLS.ServerCACertPath); err != nil {
			return Conn{}, &Error{Setting: EnvTLSCAPath, Problem: "cannot read the server CA certificate", Err: err}
		}
	}
	opts, err := prof.ToClientOptions(envconfig.ToClientOptionsRequest{IncludeRemoteCodec: true})
	if err != nil {
		return Conn{}, &Error{Setting: "TEMPORAL_TLS_*", Problem: "unusable TLS settings", Err: err}
	}
	switch v, _ := env.LookupEnv(EnvGRPCCompression); strings.ToLower(strings.TrimSpace(v)) {
	case "", CompressionGzip:
		// The SDK's default; leaving it nil keeps it so.
	case CompressionNone:
		opts.ConnectionOptions.GrpcCompression = &client.GrpcCompressionNone{}
	default:
		return Conn{}, &Error{Setting: EnvGRPCCompression, Problem: fmt.Sprintf("%q is neither %q nor %q", v, CompressionGzip, CompressionNone)}
	}
	c := Conn{Options: opts, Profile: profile}
	if prof.Codec != nil {
		c.CodecEndpoint = prof.Codec.Endpoint
	}
	if t := opts.ConnectionOptions.TLS; t != nil && t.MinVersion == 0 {
		t.MinVersion = tls.VersionTLS12
	}
	return c, nil
}

// overlay answers the overrides first, then the base environment.
type overlay struct {
	base Lookup
	over Overrides
}

func (o overlay) LookupEnv(key string) (string, bool) {
	var v string
	switch key {
	case EnvAddress:
		v = o.over.Address
	case EnvNamespace:
		v = o.over.Namespace
	case EnvAPIKey:
		v = o.over.APIKey
	case EnvTLSCertPath:
		v = o.over.TLSCertPath
	case EnvTLSKeyPath:
		v = o.over.TLSKeyPath
	case EnvTLSCAPath:
		v = o.over.TLSCAPath
	case EnvTLSServerName:
		v = o.over.TLSServerName
	case EnvProfile:
		v = o.over.Profile
	case EnvConfigFile:
		v = o.over.ConfigFile
	case EnvCodecEndpoint:
		v = o.over.CodecEndpoint
	case EnvCodecAuth:
		v = o.over.CodecAuth
	}
	if v != "" {
		return v, true
	}
	v, ok := o.base.LookupEnv(key)
	// An empty variable is unset here, as everywhere in insuranceflow.
	return v, ok && v != ""
}

func (o overlay) Environ() []string { return o.base.Environ() }
