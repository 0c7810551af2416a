package crypto

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// Keyed vectors (docs/protocol.md §19): every private key and every random
// input of a sealed entry, a grant, an invite (code, keys, packet), a join
// blob and the device certificates, as hex, so that a client written in
// another language can reproduce each byte and open each blob.
// keyed_independent_test.go checks the file with x/crypto alone.
//
// Nothing here is random. Keys and nonces are SHA-256 of a label (cut to
// the size needed), and the sealing functions draw their randomness from
// a scriptedRand that hands out exactly the recorded values, in order:
// the same io.Reader parameter production passes crypto/rand.Reader to.

// vectorBytes is the fixed stand-in for a random value: the first n bytes
// of SHA-256("kintsugi vector " + label).
func vectorBytes(label string, n int) []byte {
	sum := sha256.Sum256([]byte("kintsugi vector " + label))
	return bytes.Clone(sum[:n])
}

// scriptedRand is a random source for vectors: it returns exactly the
// given values, in order, and fails a read past their end. done fails the
// test if any value was left undrawn, so a vector records every random
// input the code used, no more and no fewer.
type scriptedRand struct{ r *bytes.Reader }

func newScriptedRand(values ...[]byte) *scriptedRand {
	return &scriptedRand{bytes.NewReader(bytes.Join(values, nil))}
}

var errScriptEnded = errors.New("the code drew more randomness than the vector records")

func (s *scriptedRand) Read(p []byte) (int, error) {
	if s.r.Len() < len(p) {
		return 0, errScriptEnded
	}
	return s.r.Read(p)
}

func (s *scriptedRand) done(t *testing.T, what string) {
	t.Helper()
	if s.r.Len() != 0 {
		t.Fatalf("%s: %d recorded random bytes were not used", what, s.r.Len())
	}
}

type hexBytes []byte

func (h hexBytes) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }
func (h *hexBytes) UnmarshalText(b []byte) error {
	d, err := hex.DecodeString(string(b))
	*h = d
	return err
}

type keyedVectors struct {
	Comment    string       `json:"comment"`
	Journal    hexBytes     `json:"journal"`
	Identities []kvIdentity `json:"identities"`
	Devices    []kvDevice   `json:"devices"`
	Invite     kvInvite     `json:"invite"`
	Join       kvJoin       `json:"join"`
	Entry      kvEntry      `json:"entry"`
	Grant      kvGrant      `json:"grant"`
	Auth       kvAuth       `json:"auth"`
	Safety     string       `json:"safety_number"` // of the two identities (§17)
	Compare    kvCompare    `json:"compare"`
}

// kvAuth is a device's answer to a relay's challenge (§3).
type kvAuth struct {
	RelayID   string   `json:"relay_id"`
	Challenge hexBytes `json:"challenge"`
	Device    string   `json:"device"`
	Message   hexBytes `json:"message"`   // AuthMessage
	Signature hexBytes `json:"signature"` // Ed25519 by the device's signing key
}

// kvCompare is the compare code (§17) over the journal's heads.
type kvCompare struct {
	Heads []kvHead `json:"heads"`
	Code  string   `json:"code"`
}

type kvHead struct {
	Device string   `json:"device"`
	Seq    uint64   `json:"seq"`
	Chain  hexBytes `json:"chain_id"`
}

type kvIdentity struct {
	Name   string   `json:"name"`
	Seed   hexBytes `json:"seed"`   // Ed25519 private key seed
	Public hexBytes `json:"public"` // Ed25519 public key
}

type kvDevice struct {
	Name       string   `json:"name"`
	Person     string   `json:"person"`
	BoxPrivate hexBytes `json:"box_private"` // X25519 private key
	BoxPublic  hexBytes `json:"box_public"`
	KeyID      hexBytes `json:"key_id"`
	SignSeed   hexBytes `json:"sign_seed"` // Ed25519 private key seed
	SignPublic hexBytes `json:"sign_public"`
	CertName   string   `json:"cert_name"`
	CertTime   int64    `json:"cert_created"` // unix seconds
	CertSigned hexBytes `json:"cert_signed"`  // "kintsugi device cert v1" 0x00 || body: what the identity key signs
	Cert       hexBytes `json:"cert"`
}

type kvHeader struct {
	Kind    protocol.Kind `json:"kind"`
	Journal hexBytes      `json:"journal"`
	Author  string        `json:"author"` // device name; its sign_public is in the header
	Seq     uint64        `json:"seq"`
	Prev    hexBytes      `json:"prev"`
	Bytes   hexBytes      `json:"bytes"`
}

type kvInvite struct {
	Inviter     string   `json:"inviter"`
	Relay       string   `json:"relay"`
	Secret      hexBytes `json:"secret"`
	Code        string   `json:"code"`
	Token       hexBytes `json:"token"`
	AuthHash    hexBytes `json:"auth_hash"`
	Key         hexBytes `json:"key"`
	Record      string   `json:"record"` // the inviter's member record JSON (§14)
	PacketNonce hexBytes `json:"packet_nonce"`
	Packet      hexBytes `json:"packet"`
}

type kvJoin struct {
	Header kvHeader `json:"header"`
	Nonce  hexBytes `json:"nonce"`
	Bind   hexBytes `json:"bind"`   // SHA-256 of the blob's first 146 bytes
	Record string   `json:"record"` // the joiner's member record JSON
	Blob   hexBytes `json:"blob"`
	BlobID hexBytes `json:"blob_id"`
	Chain  hexBytes `json:"chain_id"`
}

type kvSlot struct {
	Device    string   `json:"device"`
	BoxPublic hexBytes `json:"box_public"`
	KeyID     hexBytes `json:"key_id"`
	Nonce     hexBytes `json:"nonce"`
}

type kvOpen struct {
	Device string `json:"device"`
	Opens  bool   `json:"opens"` // false: nothing in the blob opens for this device
}

type kvEntry struct {
	Header       kvHeader `json:"header"`
	Payload      string   `json:"payload"` // UTF-8 (§15 JSON)
	PaddedSize   int      `json:"padded_size"`
	ContentKey   hexBytes `json:"content_key"`
	PayloadNonce hexBytes `json:"payload_nonce"`
	Ciphertext   hexBytes `json:"ciphertext"`
	ContentHash  hexBytes `json:"content_hash"` // H, also the chain id
	Recipients   []kvSlot `json:"recipients"`   // in blob order: sorted by box key, as the reference client sends
	Blob         hexBytes `json:"blob"`
	BlobID       hexBytes `json:"blob_id"`
	Chain        hexBytes `json:"chain_id"`
	Opens        []kvOpen `json:"opens"`
}

type kvGrantItem struct {
	Entry hexBytes `json:"entry"` // chain id of the entry it gives
	Nonce hexBytes `json:"nonce"`
}

type kvGrant struct {
	Header       kvHeader      `json:"header"`
	To           string        `json:"to"`
	KeyID        hexBytes      `json:"key_id"`
	Items        []kvGrantItem `json:"items"`
	Bound        hexBytes      `json:"bound_hash"` // SHA-256 of the bytes before the binding nonce
	BindingNonce hexBytes      `json:"binding_nonce"`
	Blob         hexBytes      `json:"blob"`
	BlobID       hexBytes      `json:"blob_id"`
	Chain        hexBytes      `json:"chain_id"`
	Opens        []kvOpen      `json:"opens"` // who opens the entry through this grant
}

// kvRecord is a member record (§14), spelled here from the document so
// that the vectors do not depend on the client package.
type kvRecord struct {
	V        int      `json:"v"`
	Name     string   `json:"name"`
	Identity []byte   `json:"identity"`
	Devices  [][]byte `json:"devices"`
	Title    string   `json:"title,omitempty"`
}

const keyedComment = "Keyed test vectors, docs/protocol.md §19. Every key and every random input is given in hex; " +
	"keys and nonces are the first bytes of SHA-256(\"kintsugi vector \" + label) and are NOT random: never use them for anything else. " +
	"Regenerate with: go test ./crypto -run Vectors -update"

// makeKeyedVectors builds the keyed vectors. The story: Alex creates a
// journal on a phone and invites Sam, whose phone joins; Alex writes an
// entry to Alex's phone and laptop and Sam's phone; Sam links a laptop
// later, so Alex's phone grants it the entry.
func makeKeyedVectors(t *testing.T) keyedVectors {
	t.Helper()
	v := keyedVectors{Comment: keyedComment, Journal: vectorBytes("journal id", protocol.JournalIDSize)}
	journal := protocol.JournalID(v.Journal)
	ids := map[string]*Identity{}
	for _, name := range []string{"alex", "sam"} {
		id, err := IdentityFromSeed(vectorBytes(name+" identity seed", 32))
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = id
		v.Identities = append(v.Identities, kvIdentity{Name: name, Seed: id.Private.Seed(), Public: hexBytes(id.Public)})
	}
	devs := map[string]*Device{}
	certs := map[string][]byte{}
	created := time.Date(2026, 3, 14, 20, 0, 0, 0, time.UTC)
	for i, d := range []struct{ name, person, cert string }{
		{"alex-phone", "alex", "Alex's phone"},
		{"alex-laptop", "alex", "alex-laptop"},
		{"sam-phone", "sam", "Sam’s phone"},
		{"sam-laptop", "sam", "sam-laptop"},
	} {
		dev, err := DeviceFromSeeds(vectorBytes(d.name+" box private", 32), vectorBytes(d.name+" sign seed", 32))
		if err != nil {
			t.Fatal(err)
		}
		at := created.Add(time.Duration(i) * time.Hour)
		cert, err := NewDeviceCert(ids[d.person], dev, d.cert, at)
		if err != nil {
			t.Fatal(err)
		}
		if c, err := ParseDeviceCert(cert); err != nil || c.Sign != dev.SignKey() || c.Box != dev.BoxPublic || !bytes.Equal(c.Identity[:], ids[d.person].Public) {
			t.Fatalf("%s: certificate does not parse back: %v", d.name, err)
		}
		devs[d.name], certs[d.name] = dev, cert
		kid := KeyID(dev.BoxPublic)
		body := cert[:len(cert)-certSignatureN]
		v.Devices = append(v.Devices, kvDevice{
			Name: d.name, Person: d.person,
			BoxPrivate: bytes.Clone(dev.BoxPrivate[:]), BoxPublic: bytes.Clone(dev.BoxPublic[:]), KeyID: kid[:],
			SignSeed: dev.SignPrivate.Seed(), SignPublic: hexBytes(dev.SignPublic),
			CertName: d.cert, CertTime: at.Unix(), CertSigned: append([]byte(certContext), body...), Cert: cert,
		})
	}
	header := func(kind protocol.Kind, author string, seq uint64, prev protocol.BlobID) (protocol.Header, kvHeader) {
		h := protocol.Header{Kind: kind, Journal: journal, Author: devs[author].SignKey(), Seq: seq, Prev: prev}
		return h, kvHeader{Kind: kind, Journal: v.Journal, Author: author, Seq: seq, Prev: bytes.Clone(prev[:]), Bytes: h.Marshal(nil)}
	}
	record := func(person, name, title string, devices ...string) string {
		r := kvRecord{V: 1, Name: name, Identity: ids[person].Public, Title: title}
		for _, d := range devices {
			r.Devices = append(r.Devices, certs[d])
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	// The invite Alex makes, and the packet the relay keeps for Sam.
	inv := kvInvite{Inviter: "alex", Relay: "wss://relay.example.org/v1/ws", Secret: vectorBytes("invite secret", 32)}
	code := protocol.InviteCode{Relay: inv.Relay, Journal: journal, Secret: [32]byte(inv.Secret)}
	inv.Code = code.String()
	keys, err := DeriveInvite(code.Secret)
	if err != nil {
		t.Fatal(err)
	}
	inv.Token, inv.AuthHash, inv.Key = bytes.Clone(keys.Token[:]), bytes.Clone(keys.AuthHash[:]), bytes.Clone(keys.Key[:])
	inv.Record = record("alex", "Alex", "Our journal", "alex-phone", "alex-laptop")
	inv.PacketNonce = vectorBytes("invite packet nonce", 24)
	r := newScriptedRand(inv.PacketNonce)
	if inv.Packet, err = SealInvitePacket(r, keys, journal, []byte(inv.Record)); err != nil {
		t.Fatal(err)
	}
	r.done(t, "invite packet")
	if got, err := OpenInvitePacket(keys, journal, inv.Packet); err != nil || string(got) != inv.Record {
		t.Fatalf("invite packet does not open: %v", err)
	}
	v.Invite = inv

	// Sam's phone answers it with a join blob.
	jh, jkv := header(protocol.KindJoin, "sam-phone", 1, protocol.BlobID{})
	join := kvJoin{Header: jkv, Nonce: vectorBytes("join nonce", 24), Record: record("sam", "Sam", "", "sam-phone")}
	r = newScriptedRand(join.Nonce)
	if join.Blob, err = SealJoin(r, keys, jh, []byte(join.Record)); err != nil {
		t.Fatal(err)
	}
	r.done(t, "join")
	bind := sha256.Sum256(join.Blob[:protocol.HeaderSize+32+24])
	id, chain := protocol.IDOf(join.Blob), protocol.ChainID(join.Blob)
	join.Bind, join.BlobID, join.Chain = bind[:], bytes.Clone(id[:]), bytes.Clone(chain[:])
	if got, err := OpenJoin(keys, join.Blob); err != nil || string(got) != join.Record {
		t.Fatalf("join does not open: %v", err)
	}
	v.Join = join

	// Alex's phone writes an entry to its own slot, Alex's laptop and
	// Sam's phone, sorted by box key as the reference client sends.
	eh, ekv := header(protocol.KindEntry, "alex-phone", 1, protocol.BlobID{})
	entry := kvEntry{
		Header:       ekv,
		Payload:      `{"v":1,"kind":"entry","created":"2026-03-14T21:05:00Z","text":"I read what you wrote last night. I am still angry, and I am still here.","feelings":["anger","hope"],"intensity":6}`,
		ContentKey:   vectorBytes("entry content key", 32),
		PayloadNonce: vectorBytes("entry payload nonce", 24),
	}
	entry.PaddedSize = PaddedSize(len(entry.Payload))
	rcpts := []string{"alex-phone", "alex-laptop", "sam-phone"}
	slices.SortFunc(rcpts, func(a, b string) int { return bytes.Compare(devs[a].BoxPublic[:], devs[b].BoxPublic[:]) })
	random := [][]byte{entry.ContentKey, entry.PayloadNonce}
	var boxKeys [][32]byte
	for _, d := range rcpts {
		kid := KeyID(devs[d].BoxPublic)
		s := kvSlot{Device: d, BoxPublic: bytes.Clone(devs[d].BoxPublic[:]), KeyID: kid[:], Nonce: vectorBytes("entry slot nonce "+d, 24)}
		entry.Recipients = append(entry.Recipients, s)
		random = append(random, s.Nonce)
		boxKeys = append(boxKeys, devs[d].BoxPublic)
	}
	r = newScriptedRand(random...)
	blob, ck, err := SealEntry(r, devs["alex-phone"], eh, boxKeys, []byte(entry.Payload))
	if err != nil {
		t.Fatal(err)
	}
	r.done(t, "entry")
	e, err := protocol.ParseEntry(blob)
	if err != nil {
		t.Fatal(err)
	}
	entry.Blob, entry.Ciphertext, entry.ContentHash = blob, bytes.Clone(e.Ciphertext), bytes.Clone(ck.Hash[:])
	id, chain = protocol.IDOf(blob), protocol.ChainID(blob)
	entry.BlobID, entry.Chain = bytes.Clone(id[:]), bytes.Clone(chain[:])
	for _, d := range []string{"alex-phone", "alex-laptop", "sam-phone", "sam-laptop"} {
		got, err := NewKeyring(devs[d]).OpenEntry(blob, journal, devs["alex-phone"].BoxPublic)
		opens := err == nil
		if opens && string(got) != entry.Payload {
			t.Fatalf("%s opens the entry to other text", d)
		}
		if opens != slices.Contains(rcpts, d) {
			t.Fatalf("%s: opens = %v", d, opens)
		}
		entry.Opens = append(entry.Opens, kvOpen{Device: d, Opens: opens})
	}
	v.Entry = entry

	// Sam's laptop, linked later, gets the entry by a grant from Alex's
	// phone: the phone's second blob.
	gh, gkv := header(protocol.KindGrant, "alex-phone", 2, chain)
	to := devs["sam-laptop"].BoxPublic
	kid := KeyID(to)
	grant := kvGrant{Header: gkv, To: "sam-laptop", KeyID: kid[:],
		Items:        []kvGrantItem{{Entry: entry.Chain, Nonce: vectorBytes("grant item nonce 1", 24)}},
		BindingNonce: vectorBytes("grant binding nonce", 24)}
	r = newScriptedRand(grant.Items[0].Nonce, grant.BindingNonce)
	if grant.Blob, err = SealGrant(r, devs["alex-phone"], gh, to, []GrantInput{{Entry: chain, Key: ck}}); err != nil {
		t.Fatal(err)
	}
	r.done(t, "grant")
	g, err := protocol.ParseGrant(grant.Blob)
	if err != nil {
		t.Fatal(err)
	}
	bound := sha256.Sum256(g.Bound)
	id, gchain := protocol.IDOf(grant.Blob), protocol.ChainID(grant.Blob)
	grant.Bound, grant.BlobID, grant.Chain = bound[:], bytes.Clone(id[:]), bytes.Clone(gchain[:])
	for _, d := range []string{"sam-laptop", "sam-phone"} {
		kr := NewKeyring(devs[d])
		opens := kr.OpenGrant(g, devs["alex-phone"].BoxPublic) == nil
		if opens {
			gk, err := kr.GrantKey(&g.Items[0], devs["alex-phone"].BoxPublic, e)
			if err != nil || gk != ck {
				t.Fatalf("%s: grant item does not give the content key: %v", d, err)
			}
		}
		if opens != (d == "sam-laptop") {
			t.Fatalf("%s: grant opens = %v", d, opens)
		}
		grant.Opens = append(grant.Opens, kvOpen{Device: d, Opens: opens})
	}
	v.Grant = grant

	// Alex's phone answers a relay's challenge; the two compare codes.
	auth := kvAuth{RelayID: "3f9c2a7d51e04b8c9a6e1d2f7b3c4a58", Challenge: vectorBytes("relay challenge", 32), Device: "alex-phone"}
	auth.Message = protocol.AuthMessage(auth.RelayID, auth.Challenge)
	auth.Signature = NewKeyring(devs["alex-phone"]).SignAuth(auth.RelayID, auth.Challenge)
	v.Auth = auth
	v.Safety = SafetyNumber(ids["alex"].Public, ids["sam"].Public)
	// Only entries are heads (grants and joins never are), so the one
	// head is Alex's phone's entry.
	v.Compare = kvCompare{Heads: []kvHead{{Device: "alex-phone", Seq: 1, Chain: entry.Chain}},
		Code: CompareCode(journal, []ChainHead{{Device: devs["alex-phone"].SignKey(), Seq: 1, Chain: [32]byte(entry.Chain)}})}
	return v
}

func TestKeyedVectors(t *testing.T) {
	path := filepath.Join("testdata", "keyed.json")
	fresh, err := json.MarshalIndent(makeKeyedVectors(t), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	fresh = append(fresh, '\n')
	if *update {
		if err := os.WriteFile(path, fresh, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, fresh) {
		t.Fatalf("%s does not match what the code makes now: a format changed. If on purpose, run go test ./crypto -run Vectors -update and update docs/protocol.md", path)
	}
}
