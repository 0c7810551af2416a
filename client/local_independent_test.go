package client_test

// An independent reader of testdata/local-vectors.json: the standard
// library and golang.org/x/crypto only, and the layouts of
// docs/protocol.md §18, as a client in another language would read a
// home. TestIndependentReadersStayIndependent (crypto) keeps it from
// importing the module.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/secretbox"
)

type liHex []byte

func (h *liHex) UnmarshalText(b []byte) error {
	d, err := hex.DecodeString(string(b))
	*h = d
	return err
}

type liParams struct {
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
}

type liVectors struct {
	Devices []struct {
		Name       string `json:"name"`
		BoxPrivate liHex  `json:"box_private"`
		BoxPublic  liHex  `json:"box_public"`
		SignSeed   liHex  `json:"sign_seed"`
		SignPublic liHex  `json:"sign_public"`
		Cert       liHex  `json:"cert"`
	} `json:"devices"`
	KeyFile struct {
		Passphrase string   `json:"passphrase"`
		Params     liParams `json:"params"`
		Salt       liHex    `json:"salt"`
		Nonce      liHex    `json:"nonce"`
		Key        liHex    `json:"key"`
		Secrets    string   `json:"secrets"`
		Box        liHex    `json:"box"`
		Check      liHex    `json:"check"`
		File       string   `json:"file"`
	} `json:"key_file"`
	State struct {
		StorageKey liHex  `json:"storage_key"`
		Journal    liHex  `json:"journal"`
		Nonce      liHex  `json:"nonce"`
		JSON       string `json:"json"`
		Sealed     liHex  `json:"sealed"`
	} `json:"state"`
	Log struct {
		Records []struct {
			Type   string `json:"type"`
			Seq    uint64 `json:"seq"`
			BlobID liHex  `json:"blob_id"`
			Blob   liHex  `json:"blob"`
			Purged liHex  `json:"purged"`
			Body   liHex  `json:"body"`
			CRC    liHex  `json:"crc"`
			Record liHex  `json:"record"`
		} `json:"records"`
		File liHex `json:"file"`
	} `json:"log"`
	Link struct {
		Device      string `json:"device"`
		Relay       string `json:"relay"`
		Secret      liHex  `json:"secret"`
		Code        string `json:"code"`
		Token       liHex  `json:"token"`
		AuthHash    liHex  `json:"auth_hash"`
		Key         liHex  `json:"key"`
		JSON        string `json:"json"`
		PacketNonce liHex  `json:"packet_nonce"`
		Packet      liHex  `json:"packet"`
	} `json:"link"`
}

func TestLocalVectorsIndependent(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "local-vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v liVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	devices := map[string][]byte{} // box public key → certificate
	for _, d := range v.Devices {
		pub, err := curve25519.X25519(d.BoxPrivate, curve25519.Basepoint)
		if err != nil || !bytes.Equal(pub, d.BoxPublic) || !bytes.Equal(ed25519.NewKeyFromSeed(d.SignSeed).Public().(ed25519.PublicKey), d.SignPublic) {
			t.Fatalf("device %s: private keys do not give the public keys", d.Name)
		}
		devices[string(pub)] = d.Cert
	}

	var storageKey, identitySeed []byte
	t.Run("key file", func(t *testing.T) {
		kf := v.KeyFile
		// §18 Key file: the JSON fields, then the check over the compact
		// JSON without it, then argon2id and secretbox.
		var f struct {
			Version int      `json:"version"`
			KDF     string   `json:"kdf"`
			Params  liParams `json:"params"`
			Salt    []byte   `json:"salt"`
			Nonce   []byte   `json:"nonce"`
			Box     []byte   `json:"box"`
			Check   []byte   `json:"check"`
		}
		if err := json.Unmarshal([]byte(kf.File), &f); err != nil {
			t.Fatal(err)
		}
		if f.Version != 2 || f.KDF != "argon2id" || f.Params != kf.Params || !bytes.Equal(f.Salt, kf.Salt) || !bytes.Equal(f.Nonce, kf.Nonce) || !bytes.Equal(f.Box, kf.Box) || !bytes.Equal(f.Check, kf.Check) {
			t.Fatal("the file does not hold the recorded fields")
		}
		if p := f.Params; p.Time < 1 || p.Time > 16 || p.MemoryKiB < 8192 || p.MemoryKiB > 2097152 || p.Threads < 1 || p.Threads > 16 {
			t.Fatal("parameters out of bounds")
		}
		b64 := base64.StdEncoding.EncodeToString
		compact := fmt.Sprintf(`{"version":%d,"kdf":%q,"params":{"time":%d,"memory_kib":%d,"threads":%d},"salt":%q,"nonce":%q,"box":%q}`,
			f.Version, f.KDF, f.Params.Time, f.Params.MemoryKiB, f.Params.Threads, b64(f.Salt), b64(f.Nonce), b64(f.Box))
		if check := sha256.Sum256([]byte(compact)); !bytes.Equal(check[:], f.Check) {
			t.Fatal("check does not match the compact JSON")
		}
		key := argon2.IDKey([]byte(kf.Passphrase), f.Salt, f.Params.Time, f.Params.MemoryKiB, f.Params.Threads, 32)
		if !bytes.Equal(key, kf.Key) {
			t.Fatal("argon2id gives another key")
		}
		if box := secretbox.Seal(nil, []byte(kf.Secrets), (*[24]byte)(f.Nonce), (*[32]byte)(key)); !bytes.Equal(box, f.Box) {
			t.Fatal("sealing the secrets again gives another box")
		}
		plain, ok := secretbox.Open(nil, f.Box, (*[24]byte)(f.Nonce), (*[32]byte)(key))
		if !ok || string(plain) != kf.Secrets {
			t.Fatal("the box does not open to the secrets")
		}
		if _, ok := secretbox.Open(nil, f.Box, (*[24]byte)(f.Nonce), (*[32]byte)(argon2.IDKey([]byte(kf.Passphrase+" "), f.Salt, f.Params.Time, f.Params.MemoryKiB, f.Params.Threads, 32))); ok {
			t.Fatal("another passphrase opens the box")
		}
		var s struct {
			Version      int    `json:"version"`
			IdentitySeed []byte `json:"identity_seed"`
			BoxPrivate   []byte `json:"box_private"`
			SignSeed     []byte `json:"sign_seed"`
			Cert         []byte `json:"cert"`
			StorageKey   []byte `json:"storage_key"`
		}
		if err := json.Unmarshal(plain, &s); err != nil || s.Version != 1 || len(s.StorageKey) != 32 {
			t.Fatalf("secrets: %v", err)
		}
		// The certificate (§11) names these keys and is signed by the identity.
		boxPub, _ := curve25519.X25519(s.BoxPrivate, curve25519.Basepoint)
		idPub := ed25519.NewKeyFromSeed(s.IdentitySeed).Public().(ed25519.PublicKey)
		signPub := ed25519.NewKeyFromSeed(s.SignSeed).Public().(ed25519.PublicKey)
		c := s.Cert
		if len(c) < 106+64 || c[0] != 1 || !bytes.Equal(c[1:33], idPub) || !bytes.Equal(c[33:65], signPub) || !bytes.Equal(c[65:97], boxPub) || len(c) != 106+int(c[105])+64 {
			t.Fatal("certificate does not name the keys")
		}
		if !ed25519.Verify(idPub, append([]byte("kintsugi device cert v1\x00"), c[:106+int(c[105])]...), c[106+int(c[105]):]) {
			t.Fatal("certificate signature does not verify")
		}
		if !bytes.Equal(devices[string(boxPub)], c) {
			t.Fatal("the key file's device is not in the vector's devices")
		}
		storageKey, identitySeed = s.StorageKey, s.IdentitySeed
	})

	t.Run("state", func(t *testing.T) {
		st := v.State
		if storageKey == nil || !bytes.Equal(storageKey, st.StorageKey) {
			t.Fatal("the state's storage key is not the key file's")
		}
		// §18 Sealed state: nonce (24) || secretbox(state JSON).
		again := secretbox.Seal(bytes.Clone(st.Nonce), []byte(st.JSON), (*[24]byte)(st.Nonce), (*[32]byte)(st.StorageKey))
		if !bytes.Equal(again, st.Sealed) {
			t.Fatal("sealing the state again gives other bytes")
		}
		plain, ok := secretbox.Open(nil, st.Sealed[24:], (*[24]byte)(st.Sealed[:24]), (*[32]byte)(st.StorageKey))
		if !ok || string(plain) != st.JSON {
			t.Fatal("the state does not open")
		}
		var s struct {
			ID      string `json:"id"`
			Members []struct {
				Devices [][]byte `json:"devices"`
				Self    bool     `json:"self"`
			} `json:"members"`
		}
		if err := json.Unmarshal(plain, &s); err != nil || s.ID != hex.EncodeToString(st.Journal) || len(s.Members) == 0 {
			t.Fatalf("state JSON: id %q, %v", s.ID, err)
		}
		for _, m := range s.Members {
			for _, c := range m.Devices {
				if len(c) < 97 || !bytes.Equal(devices[string(c[65:97])], c) {
					t.Fatal("a member's certificate is not one of the vector's devices")
				}
			}
		}
	})

	t.Run("link", func(t *testing.T) {
		l := v.Link
		// §14: a link code is an invite code with the prefix kl1.
		rest, ok := strings.CutPrefix(l.Code, "kl1")
		if !ok {
			t.Fatal("code does not start with kl1")
		}
		raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(rest))
		if err != nil || len(raw) < 54 {
			t.Fatalf("code does not decode: %v", err)
		}
		body, check := raw[:len(raw)-4], raw[len(raw)-4:]
		if sum := sha256.Sum256(body); !bytes.Equal(sum[:4], check) || body[0] != 1 || !bytes.Equal(body[1:17], v.State.Journal) || !bytes.Equal(body[17:49], l.Secret) || string(body[49:]) != l.Relay {
			t.Fatal("code does not hold the journal, secret and relay")
		}
		token, _ := hkdf.Key(sha256.New, l.Secret, nil, "kintsugi link token v1", 32)
		key, _ := hkdf.Key(sha256.New, l.Secret, nil, "kintsugi link key v1", 32)
		if auth := sha256.Sum256(token); !bytes.Equal(token, l.Token) || !bytes.Equal(auth[:], l.AuthHash) || !bytes.Equal(key, l.Key) {
			t.Fatal("derived link keys differ")
		}
		// The invite packet construction under the link key.
		msg := append(bytes.Clone([]byte(v.State.Journal)), l.JSON...)
		if again := secretbox.Seal(bytes.Clone(l.PacketNonce), msg, (*[24]byte)(l.PacketNonce), (*[32]byte)(key)); !bytes.Equal(again, l.Packet) {
			t.Fatal("sealing the link packet again gives other bytes")
		}
		plain, ok := secretbox.Open(nil, l.Packet[24:], (*[24]byte)(l.Packet[:24]), (*[32]byte)(key))
		if !ok || !bytes.Equal(plain[:16], v.State.Journal) || string(plain[16:]) != l.JSON {
			t.Fatal("the link packet does not open")
		}
		var p struct {
			V            int    `json:"v"`
			IdentitySeed []byte `json:"identity_seed"`
			BoxPrivate   []byte `json:"box_private"`
			SignSeed     []byte `json:"sign_seed"`
			Cert         []byte `json:"cert"`
			Journals     []struct {
				ID      string            `json:"id"`
				Members []json.RawMessage `json:"members"`
			} `json:"journals"`
		}
		if err := json.Unmarshal(plain[16:], &p); err != nil || p.V != 1 || len(p.Journals) != 1 || p.Journals[0].ID != hex.EncodeToString(v.State.Journal) || len(p.Journals[0].Members) == 0 {
			t.Fatalf("link packet JSON: %v", err)
		}
		if identitySeed == nil || !bytes.Equal(p.IdentitySeed, identitySeed) {
			t.Fatal("the link packet's identity is not the key file's")
		}
		boxPub, _ := curve25519.X25519(p.BoxPrivate, curve25519.Basepoint)
		c := p.Cert
		if !bytes.Equal(devices[string(boxPub)], c) || len(c) < 97 || !bytes.Equal(c[33:65], ed25519.NewKeyFromSeed(p.SignSeed).Public().(ed25519.PublicKey)) {
			t.Fatal("the new device's keys do not match its certificate")
		}
	})

	t.Run("log", func(t *testing.T) {
		// §18 Record log: type (1) || length (4) || body || CRC-32C (4).
		castagnoli := crc32.MakeTable(crc32.Castagnoli)
		p, i := []byte(v.Log.File), 0
		for len(p) > 0 {
			if i >= len(v.Log.Records) {
				t.Fatal("the log has more records than the vector lists")
			}
			want := v.Log.Records[i]
			if len(p) < 9 {
				t.Fatal("torn record")
			}
			n := int(binary.BigEndian.Uint32(p[1:5]))
			if len(p) < 9+n {
				t.Fatal("record runs past the end")
			}
			rec, body := p[:9+n], p[5:5+n]
			crc := crc32.Checksum(rec[:5+n], castagnoli)
			if binary.BigEndian.Uint32(rec[5+n:]) != crc || !bytes.Equal(want.CRC, rec[5+n:]) {
				t.Fatalf("record %d: CRC-32C does not match", i)
			}
			if string(rec[:1]) != want.Type || !bytes.Equal(rec, want.Record) || !bytes.Equal(body, want.Body) {
				t.Fatalf("record %d: not the listed record", i)
			}
			var fields []byte
			switch want.Type {
			case "W":
				fields = want.Blob
			case "P":
				fields = append(binary.BigEndian.AppendUint64(nil, want.Seq), want.Blob...)
			case "S", "A":
				fields = append(binary.BigEndian.AppendUint64(nil, want.Seq), want.BlobID...)
			case "U":
				fields = append(binary.BigEndian.AppendUint64(nil, want.Seq), want.Purged...)
				if len(want.Purged) != 122 || want.Purged[0] != 1 {
					t.Fatal("U: not a purged record")
				}
			case "Z", "O":
				fields = want.BlobID
			default:
				t.Fatalf("unknown record type %q", want.Type)
			}
			if !bytes.Equal(body, fields) {
				t.Fatalf("record %s: body is not its fields", want.Type)
			}
			if want.Blob != nil {
				if id := sha256.Sum256(want.Blob); !bytes.Equal(id[:], want.BlobID) {
					t.Fatalf("record %s: blob id is not SHA-256 of the blob", want.Type)
				}
			}
			p, i = p[9+n:], i+1
		}
		if i != len(v.Log.Records) || i != 7 {
			t.Fatalf("the log holds %d records, the vector lists %d", i, len(v.Log.Records))
		}
	})
}
