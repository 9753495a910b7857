// Package top owns everything this project knows about the Taobao Open
// Platform (TOP) protocol for taobao.auction.insurance.insuranceresultcallback:
// request signing and its verification, the GMT+8 timestamp, the system and
// API parameters, the response envelopes and error codes, the classification
// of every possible answer into one Outcome class, and the HTTP client that
// posts an insurance.Result to a gateway. On the server side it owns the
// checks a gateway runs on a request (gateway.go: ReadParams, Gateway.Verify,
// ParseArguments) and the error_response each failure is answered with.
//
// The protocol pieces (sign.go, protocol.go, outcome.go, gateway.go) are
// shared by the client, the gateway simulator and the ingress's
// TOP-compatible endpoint, so that no other package spells a parameter name,
// an envelope, an error code or a gateway check.
//
// Secrets (the app secret and the session key) are carried as Secret, which
// prints, logs and marshals as "[redacted]"; they never reach an error, an
// Outcome or a String() result.
package top
