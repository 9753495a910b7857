// Package codec owns payload encryption: an AES-256-GCM
// converter.PayloadCodec that encrypts every payload the Temporal client
// writes (workflow and activity inputs and results, update arguments, query
// answers, failure messages), so personal data such as
// bank_account_manager_name is unreadable in Temporal's history, and the
// remote codec HTTP endpoint through which the Temporal UI shows an
// authorised operator the decrypted payloads.
//
// Keys come from a key file (see ParseKeys): the first key encrypts and
// every key decrypts, which is how keys are rotated. Each encrypted payload
// names its key in its metadata:
//
//	encoding:          binary/encrypted
//	encryption-key-id: <key id>
//
// and holds the nonce followed by the sealed protobuf encoding of the
// original payload. Key material never appears in errors, logs or %v
// output.
package codec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/proto"
)

const (
	// EncodingEncrypted is the metadata "encoding" of an encrypted payload.
	EncodingEncrypted = "binary/encrypted"
	// MetadataKeyID is the metadata key naming the key a payload was
	// encrypted with.
	MetadataKeyID = "encryption-key-id"
	// KeySize is the length of a key: 32 bytes, for AES-256.
	KeySize = 32
	// maxKeyIDLen bounds a key id, which travels in every payload.
	maxKeyIDLen = 64
)

// keyIDPattern is what a key id may look like: it is written into every
// payload and shown in errors and logs, so it must be short and printable.
var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// Key is one AES-256 key and the id payloads name it by. Its material is
// unexported and every formatting verb prints the id only, so a Key can be
// logged or wrapped in an error without leaking the key.
type Key struct {
	ID       string
	material []byte
}

// NewKey checks id and the material's length and returns a Key holding a
// copy of material.
func NewKey(id string, material []byte) (Key, error) {
	if err := checkKeyID(id); err != nil {
		return Key{}, err
	}
	if len(material) != KeySize {
		return Key{}, &KeyError{KeyID: id, Problem: fmt.Sprintf("key is %d bytes, want %d (AES-256)", len(material), KeySize)}
	}
	return Key{ID: id, material: slices.Clone(material)}, nil
}

func checkKeyID(id string) error {
	switch {
	case id == "":
		return &KeyError{Problem: "key id is empty"}
	case len(id) > maxKeyIDLen:
		return &KeyError{Problem: fmt.Sprintf("key id is %d characters, at most %d are allowed", len(id), maxKeyIDLen)}
	case !keyIDPattern.MatchString(id):
		// Not quoted: a line with its fields swapped would put key
		// material here.
		return &KeyError{Problem: "key id may hold only letters, digits, '.', '_' and '-'"}
	}
	return nil
}

// Format prints the key's id only, whatever the verb, so neither %v, %+v,
// %#v nor %x of a Key (or of a struct holding one) shows its material.
func (k Key) Format(f fmt.State, _ rune) { fmt.Fprintf(f, "codec.Key(%s)", k.ID) }

// LogValue logs the key's id only.
func (k Key) LogValue() slog.Value { return slog.StringValue(k.ID) }

// KeyError says why a key is unusable. It names the key by id (when the id
// itself is valid), never by its material.
type KeyError struct {
	KeyID   string
	Problem string
}

func (e *KeyError) Error() string {
	if e.KeyID == "" {
		return e.Problem
	}
	return fmt.Sprintf("key %q: %s", e.KeyID, e.Problem)
}

// UnknownKeyError is returned by Decode for a payload encrypted with a key
// the codec does not hold: a key was dropped from the key file too early,
// or this process was given another deployment's file.
type UnknownKeyError struct {
	KeyID string   // as written in the payload, truncated to 64 bytes
	Known []string // the ids the codec holds
}

func (e *UnknownKeyError) Error() string {
	return fmt.Sprintf("payload encrypted with key %q, which is not in the key file (it holds %s); "+
		"keep retired keys in the file, after the first, while histories still use them",
		e.KeyID, strings.Join(e.Known, ", "))
}

// PayloadError is returned by Decode for an encrypted payload that cannot
// be decrypted: it is truncated, altered, or sealed with other material
// under the same key id.
type PayloadError struct {
	KeyID   string
	Problem string
}

func (e *PayloadError) Error() string {
	if e.KeyID == "" {
		return "encrypted payload: " + e.Problem
	}
	return fmt.Sprintf("encrypted payload (key %q): %s", e.KeyID, e.Problem)
}

// Codec encrypts payloads with its first key and decrypts those of any of
// its keys. It implements converter.PayloadCodec and is safe for
// concurrent use.
type Codec struct {
	encryptID string
	ids       []string // in key file order
	aeads     map[string]cipher.AEAD
	// requireEncrypted makes Decode refuse plaintext payloads.
	requireEncrypted bool
}

// PlaintextError is a payload that is not encrypted, refused by a codec
// that requires encryption (see RequireEncryption).
type PlaintextError struct {
	Encoding string // the payload's encoding metadata, e.g. json/plain
}

func (e *PlaintextError) Error() string {
	return "payload is not encrypted (encoding " + e.Encoding + ") and encryption is required (PAYLOAD_REQUIRE_ENCRYPTION)"
}

// RequireEncryption returns a codec with the same keys whose Decode
// refuses unencrypted payloads, so someone with raw access to Temporal
// cannot make the worker act on an input nobody with a key wrote (a
// report or an operator update sent in plaintext). Histories written
// before encryption was turned on no longer replay with it.
func (c *Codec) RequireEncryption() *Codec {
	cp := *c
	cp.requireEncrypted = true
	return &cp
}

var _ converter.PayloadCodec = (*Codec)(nil)

// New returns a Codec that encrypts with keys[0] and decrypts with any of
// keys. Ids must be unique.
func New(keys ...Key) (*Codec, error) {
	if len(keys) == 0 {
		return nil, &KeyError{Problem: "no keys given; the first key encrypts, so at least one is needed"}
	}
	c := &Codec{encryptID: keys[0].ID, aeads: make(map[string]cipher.AEAD, len(keys))}
	for _, k := range keys {
		if err := checkKeyID(k.ID); err != nil {
			return nil, err
		}
		if _, dup := c.aeads[k.ID]; dup {
			return nil, &KeyError{KeyID: k.ID, Problem: "id is given twice"}
		}
		if len(k.material) != KeySize {
			// A zero Key, not built by NewKey.
			return nil, &KeyError{KeyID: k.ID, Problem: fmt.Sprintf("key is %d bytes, want %d (AES-256)", len(k.material), KeySize)}
		}
		block, err := aes.NewCipher(k.material)
		if err != nil {
			return nil, &KeyError{KeyID: k.ID, Problem: err.Error()}
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, &KeyError{KeyID: k.ID, Problem: err.Error()}
		}
		c.aeads[k.ID] = aead
		c.ids = append(c.ids, k.ID)
	}
	return c, nil
}

// EncryptionKeyID is the id of the key new payloads are encrypted with.
func (c *Codec) EncryptionKeyID() string { return c.encryptID }

// KeyIDs are the ids of every key the codec decrypts with, the encrypting
// one first.
func (c *Codec) KeyIDs() []string { return slices.Clone(c.ids) }

// LogValue shows which keys the codec holds, by id, and "off" for a nil
// Codec (encryption not configured).
func (c *Codec) LogValue() slog.Value {
	if c == nil {
		return slog.StringValue("off")
	}
	return slog.GroupValue(
		slog.String("encryption_key_id", c.encryptID),
		slog.String("key_ids", strings.Join(c.ids, ",")),
	)
}

// Encode encrypts each payload with the first key. The nonce is random:
// with 96-bit nonces a key stays safe for billions of payloads, and
// rotation (a new first key) resets the count.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	aead := c.aeads[c.encryptID]
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if p == nil {
			continue
		}
		plain, err := proto.Marshal(p)
		if err != nil {
			return payloads, fmt.Errorf("encode payload %d: %w", i, err)
		}
		nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
		_, _ = rand.Read(nonce) // never fails (see crypto/rand.Read)
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				converter.MetadataEncoding: []byte(EncodingEncrypted),
				MetadataKeyID:              []byte(c.encryptID),
			},
			// The key id is authenticated data, so a payload relabelled
			// with another id fails to open rather than decrypting oddly.
			Data: aead.Seal(nonce, nonce, plain, []byte(c.encryptID)),
		}
	}
	return out, nil
}

// Decode decrypts every encrypted payload and passes any other through
// unchanged, so histories written before encryption was turned on still
// read.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if p == nil {
			continue
		}
		if enc := string(p.GetMetadata()[converter.MetadataEncoding]); enc != EncodingEncrypted {
			if c.requireEncrypted {
				return payloads, &PlaintextError{Encoding: enc}
			}
			out[i] = p
			continue
		}
		d, err := c.decrypt(p)
		if err != nil {
			return payloads, err
		}
		out[i] = d
	}
	return out, nil
}

func (c *Codec) decrypt(p *commonpb.Payload) (*commonpb.Payload, error) {
	id := string(p.GetMetadata()[MetadataKeyID])
	if id == "" {
		return nil, &PayloadError{Problem: "metadata has no " + MetadataKeyID}
	}
	aead, ok := c.aeads[id]
	if !ok {
		if len(id) > maxKeyIDLen {
			id = id[:maxKeyIDLen]
		}
		return nil, &UnknownKeyError{KeyID: id, Known: c.KeyIDs()}
	}
	data := p.GetData()
	if len(data) < aead.NonceSize()+aead.Overhead() {
		return nil, &PayloadError{KeyID: id, Problem: fmt.Sprintf("%d bytes is too short to be an encrypted payload", len(data))}
	}
	nonce, sealed := data[:aead.NonceSize()], data[aead.NonceSize():]
	plain, err := aead.Open(nil, nonce, sealed, []byte(id))
	if err != nil {
		return nil, &PayloadError{KeyID: id, Problem: "authentication failed: the payload was altered, or the key file holds other material under this id"}
	}
	var orig commonpb.Payload
	if err := proto.Unmarshal(plain, &orig); err != nil {
		return nil, &PayloadError{KeyID: id, Problem: "decrypted data is not a payload: " + err.Error()}
	}
	return &orig, nil
}

// DataConverter is the SDK's default data converter with payloads
// encrypted by c: set it as client.Options.DataConverter.
func (c *Codec) DataConverter() converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}

// FailureConverter moves every failure's message and stack trace into its
// encoded attributes, encrypted by c, so an error that quotes an input is as
// unreadable in the history as the input itself: set it as
// client.Options.FailureConverter, beside DataConverter.
func (c *Codec) FailureConverter() converter.FailureConverter {
	return temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
		DataConverter:          c.DataConverter(),
		EncodeCommonAttributes: true,
	})
}
