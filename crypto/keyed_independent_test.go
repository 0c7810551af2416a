package crypto_test

// An independent reader of testdata/keyed.json and testdata/vectors.json.
// It uses none of this module's packages: only the standard library and
// golang.org/x/crypto, and the byte layouts and steps of docs/protocol.md
// (§10-§14), as a client in another language would. It makes every blob
// and certificate again from the recorded keys and nonces, compares the
// bytes, and opens them. TestIndependentReadersStayIndependent keeps it,
// and the module's other *_independent_test.go readers, from importing
// the module.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/box"
	"golang.org/x/crypto/nacl/secretbox"
)

type hx []byte

func (h *hx) UnmarshalText(b []byte) error {
	d, err := hex.DecodeString(string(b))
	*h = d
	return err
}

type ivHeader struct {
	Kind    byte   `json:"kind"`
	Journal hx     `json:"journal"`
	Author  string `json:"author"`
	Seq     uint64 `json:"seq"`
	Prev    hx     `json:"prev"`
	Bytes   hx     `json:"bytes"`
}

type ivOpen struct {
	Device string `json:"device"`
	Opens  bool   `json:"opens"`
}

type ivFile struct {
	Journal    hx `json:"journal"`
	Identities []struct {
		Name   string `json:"name"`
		Seed   hx     `json:"seed"`
		Public hx     `json:"public"`
	} `json:"identities"`
	Devices []struct {
		Name       string `json:"name"`
		Person     string `json:"person"`
		BoxPrivate hx     `json:"box_private"`
		BoxPublic  hx     `json:"box_public"`
		KeyID      hx     `json:"key_id"`
		SignSeed   hx     `json:"sign_seed"`
		SignPublic hx     `json:"sign_public"`
		CertName   string `json:"cert_name"`
		CertTime   int64  `json:"cert_created"`
		CertSigned hx     `json:"cert_signed"`
		Cert       hx     `json:"cert"`
	} `json:"devices"`
	Invite struct {
		Inviter     string `json:"inviter"`
		Relay       string `json:"relay"`
		Secret      hx     `json:"secret"`
		Code        string `json:"code"`
		Token       hx     `json:"token"`
		AuthHash    hx     `json:"auth_hash"`
		Key         hx     `json:"key"`
		Record      string `json:"record"`
		PacketNonce hx     `json:"packet_nonce"`
		Packet      hx     `json:"packet"`
	} `json:"invite"`
	Join struct {
		Header ivHeader `json:"header"`
		Nonce  hx       `json:"nonce"`
		Bind   hx       `json:"bind"`
		Record string   `json:"record"`
		Blob   hx       `json:"blob"`
		BlobID hx       `json:"blob_id"`
		Chain  hx       `json:"chain_id"`
	} `json:"join"`
	Entry struct {
		Header       ivHeader `json:"header"`
		Payload      string   `json:"payload"`
		PaddedSize   int      `json:"padded_size"`
		ContentKey   hx       `json:"content_key"`
		PayloadNonce hx       `json:"payload_nonce"`
		Ciphertext   hx       `json:"ciphertext"`
		ContentHash  hx       `json:"content_hash"`
		Recipients   []struct {
			Device    string `json:"device"`
			BoxPublic hx     `json:"box_public"`
			KeyID     hx     `json:"key_id"`
			Nonce     hx     `json:"nonce"`
		} `json:"recipients"`
		Blob   hx       `json:"blob"`
		BlobID hx       `json:"blob_id"`
		Chain  hx       `json:"chain_id"`
		Opens  []ivOpen `json:"opens"`
	} `json:"entry"`
	Grant struct {
		Header ivHeader `json:"header"`
		To     string   `json:"to"`
		KeyID  hx       `json:"key_id"`
		Items  []struct {
			Entry hx `json:"entry"`
			Nonce hx `json:"nonce"`
		} `json:"items"`
		Bound        hx       `json:"bound_hash"`
		BindingNonce hx       `json:"binding_nonce"`
		Blob         hx       `json:"blob"`
		BlobID       hx       `json:"blob_id"`
		Chain        hx       `json:"chain_id"`
		Opens        []ivOpen `json:"opens"`
	} `json:"grant"`
	Auth struct {
		RelayID   string `json:"relay_id"`
		Challenge hx     `json:"challenge"`
		Device    string `json:"device"`
		Message   hx     `json:"message"`
		Signature hx     `json:"signature"`
	} `json:"auth"`
	Safety  string `json:"safety_number"`
	Compare struct {
		Heads []struct {
			Device string `json:"device"`
			Seq    uint64 `json:"seq"`
			Chain  hx     `json:"chain_id"`
		} `json:"heads"`
		Code string `json:"code"`
	} `json:"compare"`
}

// ivKeys are one device's keys as the independent reader holds them.
type ivKeys struct {
	boxPriv, boxPub [32]byte
	signPub         []byte
	identity        []byte
}

func sum(parts ...[]byte) []byte {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

// ivPaddedSize is PaddedSize of §12.
func ivPaddedSize(n int) int {
	need, size := n+4, 256
	for size < need && size < 65536 {
		size *= 2
	}
	if need > size {
		size = (need + 65535) / 65536 * 65536
	}
	return size
}

// ivUnpad is Unpad of §12: it refuses anything Pad would not make.
func ivUnpad(b []byte) ([]byte, bool) {
	if len(b) < 4 {
		return nil, false
	}
	n := int(binary.BigEndian.Uint32(b))
	if n > len(b)-4 || ivPaddedSize(n) != len(b) {
		return nil, false
	}
	for _, c := range b[4+n:] {
		if c != 0 {
			return nil, false
		}
	}
	return b[4 : 4+n], true
}

// ivLowOrder reports whether an X25519 public key has low order (§11).
func ivLowOrder(pub []byte) bool {
	scalar := bytes.Repeat([]byte{7}, 32)
	_, err := curve25519.X25519(scalar, pub)
	return err != nil
}

// ivHeaderOK checks the clear header of §10.
func ivHeaderOK(blob []byte, kind byte, journal []byte) bool {
	if len(blob) < 90 || blob[0] != 1 || blob[1] != kind || !bytes.Equal(blob[2:18], journal) {
		return false
	}
	seq := binary.BigEndian.Uint64(blob[50:58])
	return seq != 0 && (seq == 1) == bytes.Equal(blob[58:90], make([]byte, 32))
}

// ivOpenEntry follows "Opening (recipient)" of §12.
func ivOpenEntry(blob, journal []byte, own ivKeys, author []byte) ([]byte, bool) {
	if !ivHeaderOK(blob, 1, journal) || len(blob) < 115 || len(author) != 32 || ivLowOrder(author) {
		return nil, false
	}
	nonce, n := blob[90:114], int(blob[114])
	if n < 1 || n > 64 || len(blob) < 115+112*n+16 {
		return nil, false
	}
	ct := blob[115+112*n:]
	kid := sum(own.boxPub[:])[:8]
	for i := range n {
		slot := blob[115+112*i : 115+112*(i+1)]
		if !bytes.Equal(slot[:8], kid) {
			continue
		}
		kh, ok := box.Open(nil, slot[32:], (*[24]byte)(slot[8:32]), (*[32]byte)(author), &own.boxPriv)
		if !ok || len(kh) != 64 {
			continue
		}
		if !bytes.Equal(sum(blob[:114], ct), kh[32:]) {
			return nil, false
		}
		padded, ok := secretbox.Open(nil, ct, (*[24]byte)(nonce), (*[32]byte)(kh[:32]))
		if !ok {
			return nil, false
		}
		return ivUnpad(padded)
	}
	return nil, false
}

func ivHeaderBytes(h ivHeader, author []byte) []byte {
	b := []byte{1, h.Kind}
	b = append(b, h.Journal...)
	b = append(b, author...)
	b = binary.BigEndian.AppendUint64(b, h.Seq)
	return append(b, h.Prev...)
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestKeyedVectorsIndependent(t *testing.T) {
	var f ivFile
	readJSON(t, filepath.Join("testdata", "keyed.json"), &f)
	ids := map[string]ed25519.PrivateKey{}
	for _, id := range f.Identities {
		priv := ed25519.NewKeyFromSeed(id.Seed)
		if !bytes.Equal(priv.Public().(ed25519.PublicKey), id.Public) {
			t.Fatalf("identity %s: the seed does not give the public key", id.Name)
		}
		ids[id.Name] = priv
	}
	if len(ids) != 2 {
		t.Fatalf("%d identities, want 2", len(ids))
	}
	devs := map[string]ivKeys{}
	certOf := map[string][]byte{}
	for _, d := range f.Devices {
		t.Run("device cert "+d.Name, func(t *testing.T) {
			pub, err := curve25519.X25519(d.BoxPrivate, curve25519.Basepoint)
			if err != nil || !bytes.Equal(pub, d.BoxPublic) || !bytes.Equal(sum(pub)[:8], d.KeyID) {
				t.Fatal("box private key does not give the box public key and key id")
			}
			sign := ed25519.NewKeyFromSeed(d.SignSeed)
			if !bytes.Equal(sign.Public().(ed25519.PublicKey), d.SignPublic) {
				t.Fatal("signing seed does not give the signing public key")
			}
			id, ok := ids[d.Person]
			if !ok {
				t.Fatalf("unknown person %q", d.Person)
			}
			// §11: version, identity, signing key, box key, created, name.
			body := []byte{1}
			body = append(body, id.Public().(ed25519.PublicKey)...)
			body = append(body, d.SignPublic...)
			body = append(body, d.BoxPublic...)
			body = binary.BigEndian.AppendUint64(body, uint64(d.CertTime))
			body = append(body, byte(len(d.CertName)))
			body = append(body, d.CertName...)
			signed := append([]byte("kintsugi device cert v1\x00"), body...)
			if !bytes.Equal(signed, d.CertSigned) {
				t.Fatal("signed bytes differ")
			}
			cert := append(bytes.Clone(body), ed25519.Sign(id, signed)...)
			if !bytes.Equal(cert, d.Cert) {
				t.Fatal("certificate bytes differ")
			}
			if !ed25519.Verify(ed25519.PublicKey(d.Cert[1:33]), signed, d.Cert[len(body):]) {
				t.Fatal("signature does not verify")
			}
			k := ivKeys{boxPub: [32]byte(pub), boxPriv: [32]byte(d.BoxPrivate), signPub: d.SignPublic, identity: id.Public().(ed25519.PublicKey)}
			devs[d.Name], certOf[d.Name] = k, d.Cert
		})
	}
	if len(devs) != len(f.Devices) {
		t.FailNow()
	}
	// checkRecord checks a member record (§14) names person and certifies
	// exactly the given devices.
	checkRecord := func(t *testing.T, rec, person string, devices ...string) {
		t.Helper()
		var r struct {
			V        int      `json:"v"`
			Identity []byte   `json:"identity"`
			Devices  [][]byte `json:"devices"`
		}
		if err := json.Unmarshal([]byte(rec), &r); err != nil || r.V != 1 || !bytes.Equal(r.Identity, ids[person].Public().(ed25519.PublicKey)) || len(r.Devices) != len(devices) {
			t.Fatalf("member record: %v", err)
		}
		for i, d := range devices {
			if !bytes.Equal(r.Devices[i], certOf[d]) {
				t.Fatalf("member record: device %d is not %s's certificate", i, d)
			}
		}
	}

	inv := f.Invite
	t.Run("invite", func(t *testing.T) {
		// §14 Invite code: "ks1" and base32 of version, journal, secret,
		// relay and a 4-byte checksum.
		rest, ok := strings.CutPrefix(inv.Code, "ks1")
		if !ok {
			t.Fatal("code does not start with ks1")
		}
		raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(rest))
		if err != nil || len(raw) < 54 {
			t.Fatalf("code does not decode: %v", err)
		}
		body, check := raw[:len(raw)-4], raw[len(raw)-4:]
		if !bytes.Equal(sum(body)[:4], check) || body[0] != 1 || !bytes.Equal(body[1:17], f.Journal) || !bytes.Equal(body[17:49], inv.Secret) || string(body[49:]) != inv.Relay {
			t.Fatal("code does not hold the journal, secret and relay")
		}
		token, _ := hkdf.Key(sha256.New, inv.Secret, nil, "kintsugi invite token v1", 32)
		key, _ := hkdf.Key(sha256.New, inv.Secret, nil, "kintsugi invite key v1", 32)
		if !bytes.Equal(token, inv.Token) || !bytes.Equal(sum(token), inv.AuthHash) || !bytes.Equal(key, inv.Key) {
			t.Fatal("derived keys differ")
		}
		// §14 Invite packet.
		packet := secretbox.Seal(bytes.Clone(inv.PacketNonce), append(bytes.Clone(f.Journal), inv.Record...), (*[24]byte)(inv.PacketNonce), (*[32]byte)(key))
		if !bytes.Equal(packet, inv.Packet) {
			t.Fatal("packet bytes differ")
		}
		msg, ok := secretbox.Open(nil, inv.Packet[24:], (*[24]byte)(inv.Packet[:24]), (*[32]byte)(key))
		if !ok || !bytes.Equal(msg[:16], f.Journal) || string(msg[16:]) != inv.Record {
			t.Fatal("packet does not open to the journal and the record")
		}
		checkRecord(t, inv.Record, inv.Inviter, "alex-phone", "alex-laptop")
	})

	j := f.Join
	t.Run("join", func(t *testing.T) {
		// §14 Join blob.
		joiner := devs[j.Header.Author]
		hdr := ivHeaderBytes(j.Header, joiner.signPub)
		if !bytes.Equal(hdr, j.Header.Bytes) || j.Header.Kind != 3 {
			t.Fatal("header bytes differ")
		}
		prefix := append(append(hdr, inv.AuthHash...), j.Nonce...)
		bind := sum(prefix)
		blob := secretbox.Seal(bytes.Clone(prefix), append(bytes.Clone(bind), j.Record...), (*[24]byte)(j.Nonce), (*[32]byte)(inv.Key))
		if !bytes.Equal(bind, j.Bind) || !bytes.Equal(blob, j.Blob) || !bytes.Equal(sum(blob), j.BlobID) || !bytes.Equal(j.Chain, j.BlobID) {
			t.Fatal("join bytes or ids differ")
		}
		if !ivHeaderOK(j.Blob, 3, f.Journal) || !bytes.Equal(j.Blob[90:122], inv.AuthHash) {
			t.Fatal("join header or auth hash wrong")
		}
		msg, ok := secretbox.Open(nil, j.Blob[146:], (*[24]byte)(j.Blob[122:146]), (*[32]byte)(inv.Key))
		if !ok || len(msg) < 32 || !bytes.Equal(msg[:32], sum(j.Blob[:146])) || string(msg[32:]) != j.Record {
			t.Fatal("join does not open to its record")
		}
		checkRecord(t, j.Record, "sam", "sam-phone")
	})

	e := f.Entry
	t.Run("entry", func(t *testing.T) {
		author := devs[e.Header.Author]
		hdr := ivHeaderBytes(e.Header, author.signPub)
		if !bytes.Equal(hdr, e.Header.Bytes) || e.Header.Kind != 1 {
			t.Fatal("header bytes differ")
		}
		// §12 Sealing, steps 1-6.
		padded := make([]byte, ivPaddedSize(len(e.Payload)))
		binary.BigEndian.PutUint32(padded, uint32(len(e.Payload)))
		copy(padded[4:], e.Payload)
		if len(padded) != e.PaddedSize {
			t.Fatalf("padded size %d, vector says %d", len(padded), e.PaddedSize)
		}
		ct := secretbox.Seal(nil, padded, (*[24]byte)(e.PayloadNonce), (*[32]byte)(e.ContentKey))
		h := sum(hdr, e.PayloadNonce, ct)
		if !bytes.Equal(ct, e.Ciphertext) || !bytes.Equal(h, e.ContentHash) {
			t.Fatal("ciphertext or content hash differ")
		}
		blob := append(bytes.Clone(hdr), e.PayloadNonce...)
		blob = append(blob, byte(len(e.Recipients)))
		for i, r := range e.Recipients {
			to := devs[r.Device]
			if !bytes.Equal(r.BoxPublic, to.boxPub[:]) || !bytes.Equal(r.KeyID, sum(to.boxPub[:])[:8]) {
				t.Fatalf("recipient %d: key or key id differ", i)
			}
			if i > 0 && bytes.Compare(e.Recipients[i-1].BoxPublic, r.BoxPublic) >= 0 {
				t.Fatal("recipients are not sorted by box key")
			}
			blob = append(blob, r.KeyID...)
			blob = append(blob, r.Nonce...)
			blob = box.Seal(blob, append(bytes.Clone(e.ContentKey), h...), (*[24]byte)(r.Nonce), &to.boxPub, &author.boxPriv)
		}
		blob = append(blob, ct...)
		if !bytes.Equal(blob, e.Blob) {
			t.Fatal("blob bytes differ")
		}
		if !bytes.Equal(sum(blob), e.BlobID) || !bytes.Equal(e.Chain, h) {
			t.Fatal("blob id or chain id differ")
		}
		for _, o := range e.Opens {
			got, ok := ivOpenEntry(e.Blob, f.Journal, devs[o.Device], author.boxPub[:])
			if ok != o.Opens || ok && string(got) != e.Payload {
				t.Errorf("%s: opened = %v, vector says %v", o.Device, ok, o.Opens)
			}
		}
	})

	g := f.Grant
	t.Run("grant", func(t *testing.T) {
		granter, to := devs[g.Header.Author], devs[g.To]
		hdr := ivHeaderBytes(g.Header, granter.signPub)
		if !bytes.Equal(hdr, g.Header.Bytes) || g.Header.Kind != 2 || !bytes.Equal(g.Header.Prev, e.Chain) {
			t.Fatal("header bytes differ, or prev is not the entry")
		}
		// §13 Sealing, steps 1-4.
		blob := append(bytes.Clone(hdr), sum(to.boxPub[:])[:8]...)
		blob = binary.BigEndian.AppendUint16(blob, uint16(len(g.Items)))
		for _, it := range g.Items {
			if !bytes.Equal(it.Entry, e.Chain) {
				t.Fatal("item names another entry")
			}
			blob = append(blob, it.Entry...)
			blob = append(blob, it.Nonce...)
			blob = box.Seal(blob, append(bytes.Clone(e.ContentKey), e.ContentHash...), (*[24]byte)(it.Nonce), &to.boxPub, &granter.boxPriv)
		}
		s := sum(blob)
		blob = append(blob, g.BindingNonce...)
		blob = box.Seal(blob, s, (*[24]byte)(g.BindingNonce), &to.boxPub, &granter.boxPriv)
		if !bytes.Equal(s, g.Bound) || !bytes.Equal(blob, g.Blob) || !bytes.Equal(sum(blob), g.BlobID) || !bytes.Equal(g.Chain, g.BlobID) {
			t.Fatal("grant bytes or ids differ")
		}
		// Checks on receipt, then the entry through the item.
		for _, o := range g.Opens {
			own := devs[o.Device]
			got, ok := ivOpenGrant(g.Blob, f.Journal, own, granter.boxPub[:], e.Blob)
			if ok != o.Opens || ok && string(got) != e.Payload {
				t.Errorf("%s: opened through the grant = %v, vector says %v", o.Device, ok, o.Opens)
			}
		}
		if _, ok := ivOpenEntry(e.Blob, f.Journal, to, granter.boxPub[:]); ok {
			t.Errorf("%s opens the entry without the grant", g.To)
		}
	})

	t.Run("auth, safety number, compare code", func(t *testing.T) {
		// §3: AuthMessage = context || len(relay id) || relay id || challenge.
		a := f.Auth
		m := append([]byte("kintsugi auth v1\x00"), byte(len(a.RelayID)))
		m = append(append(m, a.RelayID...), a.Challenge...)
		if !bytes.Equal(m, a.Message) || !ed25519.Verify(devs[a.Device].signPub, m, a.Signature) {
			t.Error("auth message or signature wrong")
		}
		var seed []byte
		for _, d := range f.Devices {
			if d.Name == a.Device {
				seed = d.SignSeed
			}
		}
		if !bytes.Equal(ed25519.Sign(ed25519.NewKeyFromSeed(seed), m), a.Signature) {
			t.Error("signing the auth message again gives another signature")
		}
		if got := ivSafetyNumber(f.Identities[0].Public, f.Identities[1].Public); got != f.Safety {
			t.Errorf("safety number %q, file says %q", got, f.Safety)
		}
		var heads [][3][]byte
		for _, h := range f.Compare.Heads {
			heads = append(heads, [3][]byte{devs[h.Device].signPub, binary.BigEndian.AppendUint64(nil, h.Seq), h.Chain})
		}
		if len(heads) != 1 || !bytes.Equal(heads[0][2], e.Chain) {
			t.Fatal("the one head should be the entry")
		}
		if got := ivCompareCode(f.Journal, heads); got != f.Compare.Code {
			t.Errorf("compare code %q, file says %q", got, f.Compare.Code)
		}
	})
}

// ivCompareCode is the compare code of §17 for heads already sorted by
// device signing key.
func ivCompareCode(journal []byte, heads [][3][]byte) string {
	m := append([]byte("kintsugi compare v1\x00"), journal...)
	m = binary.BigEndian.AppendUint32(m, uint32(len(heads)))
	for _, h := range heads {
		m = append(append(append(m, h[0]...), h[1]...), h[2]...)
	}
	d := sha256.Sum256(m)
	var groups []string
	for i := 0; i < 20; i += 5 {
		var c [8]byte
		copy(c[3:], d[i:i+5])
		groups = append(groups, fmt.Sprintf("%05d", binary.BigEndian.Uint64(c[:])%100000))
	}
	return strings.Join(groups, " ")
}

// ivOpenGrant follows "Checks on receipt" of §13 for a grant of one
// item naming entry, and opens the entry with the key it gives.
func ivOpenGrant(blob, journal []byte, own ivKeys, granter, entry []byte) ([]byte, bool) {
	if !ivHeaderOK(blob, 2, journal) || len(blob) < 100+72 || !bytes.Equal(blob[90:98], sum(own.boxPub[:])[:8]) {
		return nil, false
	}
	n := int(binary.BigEndian.Uint16(blob[98:100]))
	if n != 1 || len(blob) != 100+136*n+72 || !bytes.Equal(blob[18:50], entry[18:50]) {
		return nil, false
	}
	end := 100 + 136*n
	s, ok := box.Open(nil, blob[end+24:], (*[24]byte)(blob[end:end+24]), (*[32]byte)(granter), &own.boxPriv)
	if !ok || !bytes.Equal(s, sum(blob[:end])) {
		return nil, false
	}
	item := blob[100:236]
	nr := int(entry[114])
	ct := entry[115+112*nr:]
	h := sum(entry[:114], ct)
	if !bytes.Equal(item[:32], h) {
		return nil, false
	}
	kh, ok := box.Open(nil, item[56:], (*[24]byte)(item[32:56]), (*[32]byte)(granter), &own.boxPriv)
	if !ok || len(kh) != 64 || !bytes.Equal(kh[32:], h) {
		return nil, false
	}
	padded, ok := secretbox.Open(nil, ct, (*[24]byte)(entry[90:114]), (*[32]byte)(kh[:32]))
	if !ok {
		return nil, false
	}
	return ivUnpad(padded)
}

// TestVectorsIndependent opens every case of testdata/vectors.json with
// its recorded private key, and seals the untampered blobs again from
// the recorded sealer key, content key and the nonces in the blob.
func TestVectorsIndependent(t *testing.T) {
	var vs []struct {
		Name             string `json:"name"`
		Blob             hx     `json:"blob"`
		Journal          hx     `json:"journal"`
		AuthorBox        hx     `json:"author_box"`
		Expect           string `json:"expect"`
		ReaderBoxPrivate hx     `json:"reader_box_private"`
		SealerBoxPrivate hx     `json:"sealer_box_private"`
		ContentKey       hx     `json:"content_key"`
	}
	readJSON(t, filepath.Join("testdata", "vectors.json"), &vs)
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			pub, err := curve25519.X25519(v.ReaderBoxPrivate, curve25519.Basepoint)
			if err != nil {
				t.Fatal(err)
			}
			own := ivKeys{boxPriv: [32]byte(v.ReaderBoxPrivate), boxPub: [32]byte(pub)}
			got, ok := ivOpenEntry(v.Blob, v.Journal, own, v.AuthorBox)
			want, opens := strings.CutPrefix(v.Expect, "open:")
			if ok != opens || ok && string(got) != want {
				t.Fatalf("opened = %v (%q); want %s", ok, got, v.Expect)
			}
			if !opens {
				return
			}
			// Seal it again from the recorded keys and the nonces in the
			// blob: the ciphertext and this reader's slot (the other
			// slots need keys of devices the vector does not name).
			sealer := [32]byte(v.SealerBoxPrivate)
			padded := make([]byte, ivPaddedSize(len(want)))
			binary.BigEndian.PutUint32(padded, uint32(len(want)))
			copy(padded[4:], want)
			ct := secretbox.Seal(nil, padded, (*[24]byte)(v.Blob[90:114]), (*[32]byte)(v.ContentKey))
			if !bytes.HasSuffix(v.Blob, ct) {
				t.Fatal("sealing the payload again from the recorded key gives another ciphertext")
			}
			h := sum(v.Blob[:114], ct)
			n, found := int(v.Blob[114]), false
			for i := range n {
				slot := v.Blob[115+112*i : 115+112*(i+1)]
				if !bytes.Equal(slot[:8], sum(pub)[:8]) {
					continue
				}
				again := box.Seal(bytes.Clone(slot[:32]), append(bytes.Clone([]byte(v.ContentKey)), h...), (*[24]byte)(slot[8:32]), (*[32]byte)(pub), &sealer)
				found = found || bytes.Equal(again, slot)
			}
			if !found {
				t.Fatal("sealing this reader's slot again from the recorded keys gives other bytes")
			}
		})
	}
}

// TestIndependentReadersStayIndependent fails if a reader meant to stand
// for another implementation (any *_independent_test.go in the module)
// imports this module's packages.
func TestIndependentReadersStayIndependent(t *testing.T) {
	var files []string
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, "_independent_test.go") {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 4 {
		t.Fatalf("found %d independent readers (%v); the crypto, client and protocol ones are missing", len(files), files)
	}
	for _, name := range files {
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(p, "github.com/kintsugi-journal/") {
				t.Errorf("%s imports %s: it must use only the standard library and x/crypto", name, p)
			}
		}
	}
}
