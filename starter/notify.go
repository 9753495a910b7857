package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/insuranceflow/insuranceflow/webhook"
)

// newNotifyCmd groups what a receiver of notifications needs.
func newNotifyCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "notify",
		Short: "Work with the signed notifications the worker sends to NOTIFY_URL",
	}
	cmd.AddCommand(newNotifyVerifyCmd(a))
	return cmd
}

// verifyResult is `notify verify`'s output.
type verifyResult struct {
	Verified  bool   `json:"verified"`
	WebhookID string `json:"webhook_id"`
	Timestamp int64  `json:"timestamp"`
	Type      string `json:"type,omitempty"`
	BizID     string `json:"biz_id,omitempty"`
	Seq       int64  `json:"seq,omitempty"`
}

// newNotifyVerifyCmd checks one received notification exactly as a
// receiver must: the reference implementation receivers can copy (see
// package webhook).
func newNotifyVerifyCmd(a *app) *cobra.Command {
	var (
		id, ts, sig, bodyFile, secretFile string
		tolerance                         time.Duration
	)
	cmd := &cobra.Command{
		Use:   "verify --id <webhook-id> --timestamp <webhook-timestamp> --signature <webhook-signature> [--body-file F|-]",
		Short: "Verify a notification's Standard Webhooks signature (exit 6 when it does not verify)",
		Long: "Verify one notification as its receiver must: the three headers given as flags, the\n" +
			"raw body from --body-file (default -, stdin), the secret (whsec_…) from --secret-file,\n" +
			"NOTIFY_SECRET_FILE or NOTIFY_SECRET (never a flag value: a command line is visible to\n" +
			"every user of the host). The timestamp must be within --tolerance of now, either way,\n" +
			"and one v1 signature must match HMAC-SHA256(key, id.timestamp.body). Exits 0 when it\n" +
			"verifies, 6 with the reason when it does not, 2 on a missing or malformed secret.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			file := secretFile
			if file == "" {
				file = a.getenv("NOTIFY_SECRET_FILE")
			}
			valueName, fileName := "NOTIFY_SECRET", "NOTIFY_SECRET_FILE"
			if secretFile != "" {
				fileName = "--secret-file"
			}
			value := a.getenv("NOTIFY_SECRET")
			if secretFile != "" {
				value = "" // the flag wins over the environment
			}
			secret, warn, err := webhook.ReadSecret(valueName, value, fileName, file)
			if err != nil {
				return &usageError{Command: cmd.CommandPath(), Err: err}
			}
			if warn != nil {
				fmt.Fprintln(a.stderr, "warning:", warn)
			}
			body, err := readBody(a.stdin, bodyFile)
			if err != nil {
				return &usageError{Command: cmd.CommandPath(), Err: err}
			}
			signed := webhook.Signed{ID: id, Timestamp: ts, Signature: sig, Body: body}
			if err := secret.Verify(signed, a.now(), tolerance); err != nil {
				return &unverifiedError{Err: err}
			}
			res := verifyResult{Verified: true, WebhookID: id}
			res.Timestamp, _ = strconv.ParseInt(ts, 10, 64)
			var head struct {
				Type  string `json:"type"`
				BizID string `json:"biz_id"`
				Seq   int64  `json:"seq"`
			}
			if json.Unmarshal(body, &head) == nil {
				res.Type, res.BizID, res.Seq = head.Type, head.BizID, head.Seq
			}
			return a.emit(res, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "verified: %s (%s, biz_id %s, seq %d), signed %s ago\n", res.WebhookID, res.Type, res.BizID, res.Seq,
					a.now().Sub(time.Unix(res.Timestamp, 0)).Round(time.Second))
				return err
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "the webhook-id header")
	f.StringVar(&ts, "timestamp", "", "the webhook-timestamp header (unix seconds)")
	f.StringVar(&sig, "signature", "", "the webhook-signature header (one or more space-separated v1,… values)")
	f.StringVar(&bodyFile, "body-file", "-", "the raw body, byte for byte (- = stdin)")
	f.StringVar(&secretFile, "secret-file", "", "file holding the whsec_ secret (or env NOTIFY_SECRET_FILE or NOTIFY_SECRET)")
	f.DurationVar(&tolerance, "tolerance", webhook.DefaultTolerance, "how far the timestamp may be from now, either way")
	return cmd
}

// maxNotificationBody caps what verify reads.
const maxNotificationBody = 1 << 20

func readBody(stdin io.Reader, path string) ([]byte, error) {
	r := stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("--body-file: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxNotificationBody+1))
	if err != nil {
		return nil, fmt.Errorf("read the body: %w", err)
	}
	if len(b) > maxNotificationBody {
		return nil, errors.New("the body is over 1 MiB")
	}
	return b, nil
}

// unverifiedError is a notification whose signature or timestamp does not
// verify; starter exits exitUnverified on it.
type unverifiedError struct{ Err error }

func (e *unverifiedError) Error() string { return "not verified: " + e.Err.Error() }
func (e *unverifiedError) Unwrap() error { return e.Err }
