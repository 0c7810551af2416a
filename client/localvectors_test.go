package client

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/protocol"
)

// Local storage vectors (docs/protocol.md §18, §19): a key file, a sealed
// journal state and a record log of one home, with every key, the
// passphrase and every random input in hex, made by the code that writes
// them (sealSecrets, sealState, record) with a fixed random source.
// local_independent_test.go reads the file with x/crypto alone.

var updateVectors = flag.Bool("update", false, "rewrite testdata/local-vectors.json")

// lvBytes is the fixed stand-in for a random value or key: the first n
// bytes of SHA-256("kintsugi vector " + label), the labels of
// crypto/testdata/keyed.json, so the devices here are the same.
func lvBytes(label string, n int) []byte {
	sum := sha256.Sum256([]byte("kintsugi vector " + label))
	return bytes.Clone(sum[:n])
}

// lvRand hands out exactly the given values and nothing more; done fails
// the test if any was left, so the vectors record every random input.
type lvRand struct{ r *bytes.Reader }

func newLVRand(values ...[]byte) *lvRand { return &lvRand{bytes.NewReader(bytes.Join(values, nil))} }

func (s *lvRand) Read(p []byte) (int, error) {
	if s.r.Len() < len(p) {
		return 0, errors.New("the code drew more randomness than the vector records")
	}
	return s.r.Read(p)
}

func (s *lvRand) done(t *testing.T, what string) {
	t.Helper()
	if s.r.Len() != 0 {
		t.Fatalf("%s: %d recorded random bytes were not used", what, s.r.Len())
	}
}

type lvHex []byte

func (h lvHex) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }

type localVectors struct {
	Comment string       `json:"comment"`
	Devices []lvDeviceID `json:"devices"`
	KeyFile lvKeyFile    `json:"key_file"`
	State   lvState      `json:"state"`
	Log     lvLog        `json:"log"`
	Link    lvLink       `json:"link"`
}

// lvLink is a device link code and its packet (§14 Linking a device).
type lvLink struct {
	Device      string `json:"device"` // the device being linked
	Relay       string `json:"relay"`
	Secret      lvHex  `json:"secret"`
	Code        string `json:"code"`
	Token       lvHex  `json:"token"`
	AuthHash    lvHex  `json:"auth_hash"`
	Key         lvHex  `json:"key"`
	JSON        string `json:"json"` // the link packet JSON
	PacketNonce lvHex  `json:"packet_nonce"`
	Packet      lvHex  `json:"packet"`
}

type lvDeviceID struct {
	Name       string `json:"name"`
	BoxPrivate lvHex  `json:"box_private"`
	BoxPublic  lvHex  `json:"box_public"`
	SignSeed   lvHex  `json:"sign_seed"`
	SignPublic lvHex  `json:"sign_public"`
	Cert       lvHex  `json:"cert"`
}

type lvKeyFile struct {
	Passphrase string           `json:"passphrase"` // UTF-8
	Params     crypto.KDFParams `json:"params"`     // the smallest allowed: tests only
	Salt       lvHex            `json:"salt"`
	Nonce      lvHex            `json:"nonce"`
	Key        lvHex            `json:"key"`     // argon2id(passphrase, salt, params), 32 bytes
	Secrets    string           `json:"secrets"` // the JSON inside the box
	Box        lvHex            `json:"box"`
	Check      lvHex            `json:"check"`
	File       string           `json:"file"` // the key file's exact bytes
}

type lvState struct {
	StorageKey lvHex  `json:"storage_key"`
	Journal    lvHex  `json:"journal"` // the journal directory's name, in hex
	Nonce      lvHex  `json:"nonce"`
	JSON       string `json:"json"`
	Sealed     lvHex  `json:"sealed"`
}

type lvRecord struct {
	Type   string `json:"type"`
	Seq    uint64 `json:"seq,omitempty"`     // relay seq, in P, S, A, U
	BlobID lvHex  `json:"blob_id,omitempty"` // in S, A, Z, O; of the blob in W and P
	Blob   lvHex  `json:"blob,omitempty"`    // in W and P
	Purged lvHex  `json:"purged,omitempty"`  // in U: the purged record (§10)
	Body   lvHex  `json:"body"`
	CRC    lvHex  `json:"crc"` // CRC-32C (Castagnoli) of type, length and body
	Record lvHex  `json:"record"`
}

type lvLog struct {
	Records []lvRecord `json:"records"`
	File    lvHex      `json:"file"` // the records back to back, as the log file holds them
}

const localComment = "Local storage vectors of the reference client, and a device link packet, docs/protocol.md §14, §18 and §19. " +
	"Keys, passphrase, salts and nonces are fixed stand-ins (SHA-256 of labels, as in crypto/testdata/keyed.json), NOT secrets: never use them. " +
	"The key file uses the smallest argon2id setting allowed (t=1, m=8192 KiB, p=1), which only tests and demos use. " +
	"The log shows each record type once; it is not a history a client would write. " +
	"Regenerate with: go test ./client -run Vectors -update"

func makeLocalVectors(t *testing.T) localVectors {
	t.Helper()
	v := localVectors{Comment: localComment}
	journal := protocol.JournalID(lvBytes("journal id", protocol.JournalIDSize))
	created := time.Date(2026, 3, 14, 20, 0, 0, 0, time.UTC)
	ids := map[string]*crypto.Identity{}
	for _, p := range []string{"alex", "sam"} {
		id, err := crypto.IdentityFromSeed(lvBytes(p+" identity seed", 32))
		if err != nil {
			t.Fatal(err)
		}
		ids[p] = id
	}
	devs := map[string]*crypto.Device{}
	certs := map[string][]byte{}
	for i, d := range []struct{ name, person, cert string }{
		{"alex-phone", "alex", "Alex's phone"},
		{"alex-laptop", "alex", "alex-laptop"},
		{"sam-phone", "sam", "Sam’s phone"},
	} {
		dev, err := crypto.DeviceFromSeeds(lvBytes(d.name+" box private", 32), lvBytes(d.name+" sign seed", 32))
		if err != nil {
			t.Fatal(err)
		}
		cert, err := crypto.NewDeviceCert(ids[d.person], dev, d.cert, created.Add(time.Duration(i)*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		devs[d.name], certs[d.name] = dev, cert
		v.Devices = append(v.Devices, lvDeviceID{d.name, bytes.Clone(dev.BoxPrivate[:]), bytes.Clone(dev.BoxPublic[:]), dev.SignPrivate.Seed(), lvHex(dev.SignPublic), cert})
	}

	// The key file of Alex's phone.
	phone := devs["alex-phone"]
	sec := secrets{
		Version: 1, Name: "Alex",
		IdentitySeed: ids["alex"].Private.Seed(), BoxPrivate: bytes.Clone(phone.BoxPrivate[:]), SignSeed: phone.SignPrivate.Seed(),
		Cert: certs["alex-phone"], StorageKey: lvBytes("alex-phone storage key", 32),
	}
	// The protocol's floor, written out: this test binary lowers
	// crypto.MinKDF and crypto.TestingKDF (see clienttest.CheapKDFMemoryKiB),
	// and a vector must open in any client.
	floor := crypto.KDFParams{Time: 1, MemoryKiB: 8 << 10, Threads: 1}
	kf := lvKeyFile{Passphrase: "only a test vector, never a real passphrase", Params: floor,
		Salt: lvBytes("key file salt", 16), Nonce: lvBytes("key file nonce", 24)}
	r := newLVRand(kf.Salt, kf.Nonce)
	file, err := sealSecrets(r, &sec, []byte(kf.Passphrase), kf.Params)
	if err != nil {
		t.Fatal(err)
	}
	r.done(t, "key file")
	plain, _ := json.Marshal(sec)
	kf.Secrets, kf.File = string(plain), string(file)
	kf.Key = argon2.IDKey([]byte(kf.Passphrase), kf.Salt, kf.Params.Time, kf.Params.MemoryKiB, kf.Params.Threads, 32)
	var onDisk struct{ Box, Check []byte }
	if err := json.Unmarshal(file, &onDisk); err != nil {
		t.Fatal(err)
	}
	kf.Box, kf.Check = onDisk.Box, onDisk.Check
	home := Home{Dir: t.TempDir()}
	if err := os.WriteFile(home.KeyPath(), file, 0o600); err != nil {
		t.Fatal(err)
	}
	acct, err := Unlock(home, []byte(kf.Passphrase))
	if err != nil || acct.Device.BoxPublic != phone.BoxPublic || acct.storageKey != [32]byte(sec.StorageKey) {
		t.Fatalf("the key file does not unlock to its keys: %v", err)
	}
	v.KeyFile = kf

	// The state of the journal Alex made and Sam joined.
	joined := created.Add(2 * time.Hour)
	st := state{
		Version: 1, ID: journal, Relay: "wss://relay.example.org/v1/ws", RelayID: "3f9c2a7d51e04b8c9a6e1d2f7b3c4a58",
		Title: "Our journal", Created: created,
		Members: []Member{
			{Name: "Alex", Identity: ids["alex"].Public, Devices: [][]byte{certs["alex-phone"], certs["alex-laptop"]}, Self: true, Joined: created},
			{Name: "Sam", Identity: ids["sam"].Public, Devices: [][]byte{certs["sam-phone"]}, Joined: joined},
		},
		LastSync: joined.Add(time.Hour),
		ShownSeq: 4,
	}
	sv := lvState{StorageKey: sec.StorageKey, Journal: journal[:], Nonce: lvBytes("state nonce", 24)}
	r = newLVRand(sv.Nonce)
	sealed, err := sealState(r, &acct.storageKey, &st)
	if err != nil {
		t.Fatal(err)
	}
	r.done(t, "state")
	plain, _ = json.Marshal(&st)
	sv.JSON, sv.Sealed = string(plain), sealed
	j := &Journal{acct: acct, dir: filepath.Join(home.Dir, "journals", journal.String())}
	if got, err := j.openState(sealed); err != nil || got.Title != st.Title || len(got.Members) != 2 {
		t.Fatalf("the sealed state does not open: %v", err)
	}
	v.State = sv

	// One record of each type. The blobs are real: an entry Alex's phone
	// wrote and one from Sam's phone, both to the two phones.
	entry := func(author string, n byte) []byte {
		h := protocol.Header{Kind: protocol.KindEntry, Journal: journal, Author: devs[author].SignKey(), Seq: 1}
		r := newLVRand(lvBytes(author+" log entry content key", 32), lvBytes(author+" log entry payload nonce", 24),
			lvBytes(author+" log entry slot nonce 1", 24), lvBytes(author+" log entry slot nonce 2", 24))
		payload := `{"v":1,"kind":"entry","created":"2026-03-14T2` + string('0'+n) + `:30:00Z","text":"a record in the log vectors"}`
		blob, _, err := crypto.SealEntry(r, devs[author], h, [][32]byte{devs["alex-phone"].BoxPublic, devs["sam-phone"].BoxPublic}, []byte(payload))
		if err != nil {
			t.Fatal(err)
		}
		r.done(t, "log entry")
		return blob
	}
	mine, theirs := entry("alex-phone", 1), entry("sam-phone", 2)
	mineID, theirsID := protocol.IDOf(mine), protocol.IDOf(theirs)
	purgedHeader := protocol.Header{Kind: protocol.KindEntry, Journal: journal, Author: devs["sam-phone"].SignKey(), Seq: 2, Prev: protocol.ChainID(theirs)}
	purged := purgedHeader.Marshal(nil)
	purged = append(purged, lvBytes("purged chain id", 32)...)
	if _, _, err := protocol.ParsePurged(purged); err != nil {
		t.Fatal(err)
	}
	for _, rec := range []lvRecord{
		{Type: "W", Blob: mine, BlobID: mineID[:]},
		{Type: "A", Seq: 1, BlobID: mineID[:]},
		{Type: "P", Seq: 2, Blob: theirs, BlobID: theirsID[:]},
		{Type: "S", Seq: 3, BlobID: theirsID[:]},
		{Type: "U", Seq: 4, Purged: purged},
		{Type: "Z", BlobID: mineID[:]},
		{Type: "O", BlobID: mineID[:]},
	} {
		var parts [][]byte
		if rec.Seq != 0 {
			parts = append(parts, seqBytes(rec.Seq))
		}
		switch rec.Type {
		case "W", "P":
			parts = append(parts, rec.Blob)
		case "U":
			parts = append(parts, rec.Purged)
		default:
			parts = append(parts, rec.BlobID)
		}
		rec.Record = record(rec.Type[0], parts...)
		n, typ, body, ok := nextRecord(rec.Record)
		if !ok || n != len(rec.Record) || typ != rec.Type[0] {
			t.Fatalf("record %s does not read back", rec.Type)
		}
		rec.Body, rec.CRC = bytes.Clone(body), rec.Record[len(rec.Record)-4:]
		v.Log.Records = append(v.Log.Records, rec)
		v.Log.File = append(v.Log.File, rec.Record...)
	}

	// Alex's phone links Alex's laptop: the laptop's keys and the
	// journal travel in the link packet.
	laptop := devs["alex-laptop"]
	link := lvLink{Device: "alex-laptop", Relay: st.Relay, Secret: lvBytes("link secret", 32), PacketNonce: lvBytes("link packet nonce", 24)}
	code := protocol.InviteCode{Relay: link.Relay, Journal: journal, Secret: [32]byte(link.Secret), Link: true}
	link.Code = code.String()
	keys, err := crypto.DeriveLink(code.Secret)
	if err != nil {
		t.Fatal(err)
	}
	link.Token, link.AuthHash, link.Key = bytes.Clone(keys.Token[:]), bytes.Clone(keys.AuthHash[:]), bytes.Clone(keys.Key[:])
	pkt := linkPacket{V: 1, Name: "Alex", IdentitySeed: ids["alex"].Private.Seed(), BoxPrivate: bytes.Clone(laptop.BoxPrivate[:]), SignSeed: laptop.SignPrivate.Seed(), Cert: certs["alex-laptop"],
		Journals: []linkedJournal{{ID: journal, Relay: st.Relay, RelayID: st.RelayID, Title: st.Title, Created: st.Created, Members: st.Members}}}
	plain, _ = json.Marshal(pkt)
	link.JSON = string(plain)
	r = newLVRand(link.PacketNonce)
	if link.Packet, err = crypto.SealInvitePacket(r, keys, journal, plain); err != nil {
		t.Fatal(err)
	}
	r.done(t, "link packet")
	if got, err := crypto.OpenInvitePacket(keys, journal, link.Packet); err != nil || string(got) != link.JSON {
		t.Fatalf("the link packet does not open: %v", err)
	}
	v.Link = link
	return v
}

func TestLocalVectors(t *testing.T) {
	path := filepath.Join("testdata", "local-vectors.json")
	fresh, err := json.MarshalIndent(makeLocalVectors(t), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	fresh = append(fresh, '\n')
	if *updateVectors {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, fresh, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, fresh) {
		t.Fatalf("%s does not match what the code writes now: a local format changed. If on purpose, run go test ./client -run Vectors -update and update docs/protocol.md §18", path)
	}
}
