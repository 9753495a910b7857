package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/store"
)

// exitCode is the process exit status. Scripts branch on these, so their
// numbers are part of the CLI's contract and must not be renumbered.
type exitCode int

const (
	exitOK          exitCode = 0 // the command did what was asked
	exitInternal    exitCode = 1 // a bug, or a failure that fits no other code
	exitBadInput    exitCode = 2 // bad flags or arguments, or an event that fails validation
	exitRejected    exitCode = 3 // the policy refused: illegal transition, mismatch, no parked callback
	exitUnavailable exitCode = 4 // Temporal or the database could not be reached
	exitNotFound    exitCode = 5 // no such policy
	exitUnverified  exitCode = 6 // notify verify: the signature or timestamp does not verify
	exitDiffer      exitCode = 7 // reconcile: the list and insuranceflow hold different events
)

// exitCodeDoc is one line of the exit code table in `starter --help`.
type exitCodeDoc struct {
	code    exitCode
	meaning string
}

// exitCodeDocs describes every exit code, in order.
func exitCodeDocs() []exitCodeDoc {
	return []exitCodeDoc{
		{exitOK, "success"},
		{exitInternal, "internal error"},
		{exitBadInput, "bad input: flags, arguments or event validation (each field problem is printed)"},
		{exitRejected, "event or action rejected: illegal transition, mismatch, no parked callback; import: a line was refused"},
		{exitUnavailable, "connectivity: Temporal or the database is unreachable"},
		{exitNotFound, "policy not found"},
		{exitUnverified, "notify verify: the notification's signature or timestamp does not verify"},
		{exitDiffer, "reconcile: the list and insuranceflow differ"},
	}
}

// kind names an exit code in JSON error documents, so scripts reading
// --json output need not know the numbers.
func (c exitCode) kind() string {
	switch c {
	case exitOK:
		return "ok"
	case exitBadInput:
		return "bad_input"
	case exitRejected:
		return "rejected"
	case exitUnavailable:
		return "unavailable"
	case exitNotFound:
		return "not_found"
	case exitUnverified:
		return "unverified"
	case exitDiffer:
		return "differ"
	default:
		return "internal"
	}
}

// usageError is bad command-line input: an unknown flag, a missing
// argument, a flag value that does not parse.
type usageError struct {
	Command string // the command path, e.g. "starter list", for the help hint
	Err     error
}

func (e *usageError) Error() string { return e.Err.Error() }
func (e *usageError) Unwrap() error { return e.Err }

// unavailableError says a backend could not be reached at all (a dial or an
// open failed), as opposed to an operation on a reachable one failing.
type unavailableError struct {
	Backend string // "temporal" or "database"
	Target  string // address or URL, with any password removed
	Err     error
}

func (e *unavailableError) Error() string {
	return fmt.Sprintf("%s at %s is unreachable: %v", e.Backend, e.Target, e.Err)
}
func (e *unavailableError) Unwrap() error { return e.Err }

// shownError marks an error whose details the command already printed in
// its --json document (simulate's summary does), so the error is not
// printed as a second document; it still sets the exit code.
type shownError struct{ Err error }

func (e *shownError) Error() string { return e.Err.Error() }
func (e *shownError) Unwrap() error { return e.Err }

// exitCodeOf maps an error to the exit code its kind calls for. The CLI's
// own errors (command line, database URL, a backend it could not dial)
// come first; everything the policy client returns is classified by
// policyclient.Classify and mapped by exitCodeOfKind.
func exitCodeOf(err error) exitCode {
	var (
		usage     *usageError
		badURL    *store.URLError
		badScheme *store.UnsupportedSchemeError
		unreach   *unavailableError
		openErr   *store.OpenError
		unverif   *unverifiedError
		refused   *importRefusedError
		differ    *differError
	)
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &usage), errors.As(err, &badURL), errors.As(err, &badScheme):
		return exitBadInput
	case errors.As(err, &unreach), errors.As(err, &openErr):
		return exitUnavailable
	case errors.As(err, &unverif):
		return exitUnverified
	case errors.As(err, &refused):
		return exitRejected
	case errors.As(err, &differ):
		return exitDiffer
	}
	return exitCodeOfKind(policyclient.Kind(err))
}

// exitCodeOfKind is the one table from an error's kind to the exit code.
func exitCodeOfKind(k policyclient.ErrorKind) exitCode {
	switch k {
	case policyclient.KindInvalid:
		return exitBadInput
	case policyclient.KindRejected,
		// store_conflict: the action cannot be applied to the policy as
		// recorded, and running it again will not change that.
		policyclient.KindConflict:
		return exitRejected
	case policyclient.KindNotFound:
		return exitNotFound
	case policyclient.KindUnavailable,
		// A call that ran out of --timeout was waiting on a backend.
		policyclient.KindTimeout:
		return exitUnavailable
	default:
		return exitInternal
	}
}

// formatRejection renders a rejection as `rejected: <reason>: <message>
// (allowed: …)`.
func formatRejection(r *policyclient.Rejection) string {
	var b strings.Builder
	fmt.Fprintf(&b, "rejected: %s: %s", r.Reason, r.Message)
	// The workflow's message for an illegal transition usually lists the
	// allowed stages already; only add them when it does not.
	if r.Details != nil && !strings.Contains(r.Message, "allowed:") {
		allowed := "none"
		if len(r.Details.AllowedStages) > 0 {
			allowed = strings.Join(r.Details.AllowedStages, ", ")
		}
		fmt.Fprintf(&b, " (allowed: %s)", allowed)
	}
	return b.String()
}
