package codec

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/proto"
)

// managerName is the personal data the tests look for in encrypted bytes.
const managerName = "王小丫"

// material returns 32 distinct bytes starting at seed, so tests can tell
// keys apart and search for their material in output.
func material(seed byte) []byte {
	b := make([]byte, KeySize)
	for i := range b {
		b[i] = seed + byte(i)
	}
	return b
}

func mustKey(t *testing.T, id string, seed byte) Key {
	t.Helper()
	k, err := NewKey(id, material(seed))
	if err != nil {
		t.Fatalf("NewKey(%s): %v", id, err)
	}
	return k
}

func mustCodec(t *testing.T, keys ...Key) *Codec {
	t.Helper()
	c, err := New(keys...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

type event struct {
	BizID       string `json:"biz_id"`
	ManagerName string `json:"bank_account_manager_name"`
	Stage       int    `json:"stage"`
}

func TestDataConverterRoundTrip(t *testing.T) {
	c := mustCodec(t, mustKey(t, "k1", 1))
	dc := c.DataConverter()
	tests := []struct {
		name  string
		value any
		into  func() any
		plain string // must not appear in the encrypted bytes
	}{
		{"struct with personal data", event{BizID: "B1", ManagerName: managerName, Stage: 2},
			func() any { return &event{} }, managerName},
		{"string", "hello " + managerName, func() any { var s string; return &s }, managerName},
		{"bytes", []byte("raw-bytes-value"), func() any { var b []byte; return &b }, "raw-bytes-value"},
		{"nil", nil, func() any { var p *event; return &p }, "null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := dc.ToPayload(tt.value)
			if err != nil {
				t.Fatalf("ToPayload: %v", err)
			}
			if got := string(p.Metadata[converter.MetadataEncoding]); got != EncodingEncrypted {
				t.Fatalf("encoding=%q, want %q", got, EncodingEncrypted)
			}
			if got := string(p.Metadata[MetadataKeyID]); got != "k1" {
				t.Fatalf("key id=%q, want k1", got)
			}
			raw, err := proto.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(raw, []byte(tt.plain)) {
				t.Fatalf("the encrypted payload contains the plaintext %q", tt.plain)
			}
			out := tt.into()
			if err := dc.FromPayload(p, out); err != nil {
				t.Fatalf("FromPayload: %v", err)
			}
			got := fmt.Sprint(deref(out))
			if want := fmt.Sprint(tt.value); tt.value != nil && got != want {
				t.Fatalf("round trip=%s, want %s", got, want)
			}
			if tt.value == nil && got != "<nil>" {
				t.Fatalf("round trip of nil=%s, want <nil>", got)
			}
		})
	}
}

func deref(p any) any {
	switch v := p.(type) {
	case *event:
		return *v
	case *string:
		return *v
	case *[]byte:
		return *v
	case **event:
		return *v
	}
	return p
}

func TestEncodeDecode(t *testing.T) {
	c := mustCodec(t, mustKey(t, "k1", 1))
	orig := []*commonpb.Payload{
		{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`{"name":"` + managerName + `"}`)},
		{Metadata: map[string][]byte{"encoding": []byte("binary/null")}},
	}
	enc1, err := c.Encode(orig)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	enc2, err := c.Encode(orig)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	if len(enc1) != len(orig) {
		t.Fatalf("encoded %d payloads, want %d", len(enc1), len(orig))
	}
	t.Run("fresh nonce each time", func(t *testing.T) {
		if bytes.Equal(enc1[0].Data, enc2[0].Data) {
			t.Fatalf("two encryptions of one payload are identical; the nonce is not random")
		}
	})
	t.Run("decodes to the original", func(t *testing.T) {
		dec, err := c.Decode(enc1)
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		for i := range orig {
			if !proto.Equal(dec[i], orig[i]) {
				t.Fatalf("payload %d=%v, want %v", i, dec[i], orig[i])
			}
		}
	})
	t.Run("plain payloads pass through", func(t *testing.T) {
		dec, err := c.Decode(orig)
		if err != nil {
			t.Fatalf("Decode of unencrypted payloads: %v", err)
		}
		for i := range orig {
			if !proto.Equal(dec[i], orig[i]) {
				t.Fatalf("payload %d=%v, want it unchanged", i, dec[i])
			}
		}
	})
}

func TestRotation(t *testing.T) {
	oldKey, newKey := mustKey(t, "2024-01", 1), mustKey(t, "2025-06", 100)
	before := mustCodec(t, oldKey)
	after := mustCodec(t, newKey, oldKey)

	old, err := before.DataConverter().ToPayload(event{BizID: "B1", ManagerName: managerName})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("old payloads still decode", func(t *testing.T) {
		var e event
		if err := after.DataConverter().FromPayload(old, &e); err != nil {
			t.Fatalf("FromPayload after rotation: %v", err)
		}
		if e.ManagerName != managerName || e.BizID != "B1" {
			t.Fatalf("decoded %+v, want B1 and the manager name", e)
		}
	})
	t.Run("new payloads use the new key", func(t *testing.T) {
		if got := after.EncryptionKeyID(); got != "2025-06" {
			t.Fatalf("EncryptionKeyID=%q, want 2025-06", got)
		}
		p, err := after.DataConverter().ToPayload(event{BizID: "B2"})
		if err != nil {
			t.Fatal(err)
		}
		if got := string(p.Metadata[MetadataKeyID]); got != "2025-06" {
			t.Fatalf("key id=%q, want 2025-06", got)
		}
		// And the old deployment cannot read it: the rotation is real.
		var e event
		err = before.DataConverter().FromPayload(p, &e)
		var unknown *UnknownKeyError
		if !errors.As(err, &unknown) || unknown.KeyID != "2025-06" {
			t.Fatalf("old codec decoding a new payload: err=%v, want UnknownKeyError for 2025-06", err)
		}
	})
	t.Run("key ids in order", func(t *testing.T) {
		if got := strings.Join(after.KeyIDs(), ","); got != "2025-06,2024-01" {
			t.Fatalf("KeyIDs=%s, want 2025-06,2024-01", got)
		}
	})
}

func TestDecodeErrors(t *testing.T) {
	k1, k2 := mustKey(t, "k1", 1), mustKey(t, "k2", 50)
	c := mustCodec(t, k1, k2)
	enc, err := c.Encode([]*commonpb.Payload{{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`"` + managerName + `"`)}})
	if err != nil {
		t.Fatal(err)
	}
	good := enc[0]
	mutate := func(f func(p *commonpb.Payload)) *commonpb.Payload {
		p := proto.Clone(good).(*commonpb.Payload)
		f(p)
		return p
	}
	tests := []struct {
		name    string
		payload *commonpb.Payload
		check   func(t *testing.T, err error)
	}{
		{"unknown key id", mutate(func(p *commonpb.Payload) { p.Metadata[MetadataKeyID] = []byte("retired-2019") }),
			func(t *testing.T, err error) {
				var e *UnknownKeyError
				if !errors.As(err, &e) {
					t.Fatalf("err=%v (%T), want *UnknownKeyError", err, err)
				}
				if e.KeyID != "retired-2019" || strings.Join(e.Known, ",") != "k1,k2" {
					t.Fatalf("err=%+v, want key retired-2019 and known k1,k2", e)
				}
				want := `payload encrypted with key "retired-2019", which is not in the key file (it holds k1, k2)`
				if !strings.HasPrefix(err.Error(), want) {
					t.Fatalf("message=%q, want it to start with %q", err, want)
				}
			}},
		{"relabelled with another held key", mutate(func(p *commonpb.Payload) { p.Metadata[MetadataKeyID] = []byte("k2") }),
			wantPayloadError("k2", "authentication failed")},
		{"altered data", mutate(func(p *commonpb.Payload) { p.Data[len(p.Data)-1] ^= 1 }),
			wantPayloadError("k1", "authentication failed")},
		{"truncated", mutate(func(p *commonpb.Payload) { p.Data = p.Data[:10] }),
			wantPayloadError("k1", "10 bytes is too short")},
		{"no key id", mutate(func(p *commonpb.Payload) { delete(p.Metadata, MetadataKeyID) }),
			wantPayloadError("", "metadata has no encryption-key-id")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := c.Decode([]*commonpb.Payload{tt.payload})
			if err == nil {
				t.Fatalf("Decode succeeded: %v", out)
			}
			tt.check(t, err)
			if strings.Contains(err.Error(), managerName) {
				t.Fatalf("the error quotes the plaintext: %v", err)
			}
		})
	}
}

func wantPayloadError(keyID, problem string) func(t *testing.T, err error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var e *PayloadError
		if !errors.As(err, &e) {
			t.Fatalf("err=%v (%T), want *PayloadError", err, err)
		}
		if e.KeyID != keyID || !strings.Contains(e.Problem, problem) {
			t.Fatalf("err=%+v, want key %q and a problem containing %q", e, keyID, problem)
		}
	}
}

func TestFailureConverterEncryptsMessages(t *testing.T) {
	c := mustCodec(t, mustKey(t, "k1", 1))
	fc := c.FailureConverter()
	cause := temporal.NewApplicationError("manager "+managerName+" unknown to the bank", "BadManager")

	f := fc.ErrorToFailure(cause)
	if strings.Contains(f.GetMessage(), managerName) {
		t.Fatalf("failure message %q holds the plaintext", f.GetMessage())
	}
	raw, err := proto.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(managerName)) {
		t.Fatalf("the failure's bytes hold the plaintext")
	}
	if got := string(f.GetEncodedAttributes().GetMetadata()[MetadataKeyID]); got != "k1" {
		t.Fatalf("encoded attributes key id=%q, want k1", got)
	}

	back := fc.FailureToError(f)
	var appErr *temporal.ApplicationError
	if !errors.As(back, &appErr) {
		t.Fatalf("FailureToError=%T, want *temporal.ApplicationError", back)
	}
	if appErr.Type() != "BadManager" || !strings.Contains(appErr.Error(), "manager "+managerName+" unknown") {
		t.Fatalf("decoded error=%q type %q, want the original message and type BadManager", appErr.Error(), appErr.Type())
	}
}

func TestNewAndNewKeyErrors(t *testing.T) {
	tests := []struct {
		name string
		make func() error
		want string
	}{
		{"no keys", func() error { _, err := New(); return err }, "no keys given; the first key encrypts, so at least one is needed"},
		{"duplicate id", func() error {
			k, _ := NewKey("same", material(1))
			_, err := New(k, k)
			return err
		}, `key "same": id is given twice`},
		{"zero key", func() error { _, err := New(Key{ID: "z"}); return err }, `key "z": key is 0 bytes, want 32 (AES-256)`},
		{"short key", func() error { _, err := NewKey("s", material(1)[:16]); return err }, `key "s": key is 16 bytes, want 32 (AES-256)`},
		{"empty id", func() error { _, err := NewKey("", material(1)); return err }, "key id is empty"},
		{"bad id", func() error { _, err := NewKey("a b", material(1)); return err }, "key id may hold only letters, digits, '.', '_' and '-'"},
		{"long id", func() error { _, err := NewKey(strings.Repeat("x", 65), material(1)); return err }, "key id is 65 characters, at most 64 are allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.make()
			var ke *KeyError
			if !errors.As(err, &ke) {
				t.Fatalf("err=%v (%T), want *KeyError", err, err)
			}
			if err.Error() != tt.want {
				t.Fatalf("err=%q, want %q", err, tt.want)
			}
		})
	}
}

// TestKeyMaterialNeverPrinted formats keys and codecs every way a log line
// or an error might, and looks for the material in every encoding.
func TestKeyMaterialNeverPrinted(t *testing.T) {
	k := mustKey(t, "k1", 200)
	c := mustCodec(t, k)
	m := material(200)
	secrets := []string{string(m), base64.StdEncoding.EncodeToString(m), hex.EncodeToString(m), fmt.Sprint(m), fmt.Sprintf("%x", m)}

	holder := struct{ Key Key }{k}
	var out bytes.Buffer
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d", "%q"} {
		fmt.Fprintf(&out, verb+"\n", k)
		fmt.Fprintf(&out, verb+"\n", holder)
		fmt.Fprintf(&out, verb+"\n", []Key{k})
	}
	logger := slog.New(slog.NewJSONHandler(&out, nil))
	logger.Info("keys", "key", k, "codec", c, "holder", holder)
	slog.New(slog.NewTextHandler(&out, nil)).Info("keys", "key", k, "codec", c)

	for _, s := range secrets {
		if strings.Contains(out.String(), s) {
			t.Fatalf("output contains the key material (%q form):\n%s", s, out.String())
		}
	}
	if !strings.Contains(out.String(), "codec.Key(k1)") || !strings.Contains(out.String(), `"encryption_key_id":"k1"`) {
		t.Fatalf("output does not name the key by id:\n%s", out.String())
	}
}

func TestRequireEncryptionRefusesPlaintext(t *testing.T) {
	key, err := NewKey("k1", bytes.Repeat([]byte{7}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := converter.GetDefaultDataConverter().ToPayload("account manager")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := c.Decode([]*commonpb.Payload{plain}); err != nil || out[0] != plain {
		t.Fatalf("lenient codec: %v, want the plaintext payload passed through", err)
	}
	strict := c.RequireEncryption()
	_, err = strict.Decode([]*commonpb.Payload{plain})
	var perr *PlaintextError
	if !errors.As(err, &perr) || perr.Encoding != "json/plain" {
		t.Fatalf("strict codec on plaintext: err=%v, want a PlaintextError for json/plain", err)
	}
	enc, err := strict.Encode([]*commonpb.Payload{plain})
	if err != nil {
		t.Fatal(err)
	}
	dec, err := strict.Decode(enc)
	if err != nil || string(dec[0].GetData()) != string(plain.GetData()) {
		t.Fatalf("strict codec round trip: %v", err)
	}
	// The strict copy does not change the codec it came from.
	if _, err := c.Decode([]*commonpb.Payload{plain}); err != nil {
		t.Fatalf("RequireEncryption changed the original: %v", err)
	}
}
