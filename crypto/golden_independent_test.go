package crypto_test

// An independent reader of testdata/golden.json and
// testdata/backup-vectors.json: standard library and x/crypto only, with
// the steps of docs/protocol.md §14, §17 and §18 (Backup file).

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/nacl/secretbox"
)

// ivFingerprint is one person's 30 digits of §17.
func ivFingerprint(key []byte) string {
	d := sha512.Sum512(append(append([]byte{0, 0}, key...), "kintsugi"...))
	for range 5200 {
		d = sha512.Sum512(append(d[:], key...))
	}
	var out strings.Builder
	for i := 0; i < 30; i += 5 {
		var c [8]byte
		copy(c[3:], d[i:i+5])
		fmt.Fprintf(&out, "%05d", binary.BigEndian.Uint64(c[:])%100000)
	}
	return out.String()
}

func ivSafetyNumber(a, b []byte) string {
	fa, fb := ivFingerprint(a), ivFingerprint(b)
	if fa > fb {
		fa, fb = fb, fa
	}
	all := fa + fb
	var groups []string
	for i := 0; i < 60; i += 5 {
		groups = append(groups, all[i:i+5])
	}
	return strings.Join(groups, " ")
}

func TestGoldenIndependent(t *testing.T) {
	type derivation struct {
		Secret   hx `json:"secret"`
		Token    hx `json:"token"`
		AuthHash hx `json:"auth_hash"`
		Key      hx `json:"key"`
	}
	var g struct {
		SafetyNumbers []struct {
			A      hx     `json:"identity_a"`
			B      hx     `json:"identity_b"`
			Number string `json:"safety_number"`
		} `json:"safety_numbers"`
		Invites []derivation `json:"invites"`
		Links   []derivation `json:"links"`
	}
	readJSON(t, filepath.Join("testdata", "golden.json"), &g)
	if len(g.SafetyNumbers) == 0 || len(g.Invites) == 0 || len(g.Links) == 0 {
		t.Fatal("golden.json is missing cases")
	}
	for i, s := range g.SafetyNumbers {
		if got := ivSafetyNumber(s.A, s.B); got != s.Number {
			t.Errorf("safety number %d: %q, file says %q", i, got, s.Number)
		}
	}
	for _, c := range []struct {
		kind string
		ds   []derivation
	}{{"invite", g.Invites}, {"link", g.Links}} {
		for i, d := range c.ds {
			token, _ := hkdf.Key(sha256.New, d.Secret, nil, "kintsugi "+c.kind+" token v1", 32)
			key, _ := hkdf.Key(sha256.New, d.Secret, nil, "kintsugi "+c.kind+" key v1", 32)
			auth := sha256.Sum256(token)
			if !bytes.Equal(token, d.Token) || !bytes.Equal(auth[:], d.AuthHash) || !bytes.Equal(key, d.Key) {
				t.Errorf("%s %d: derived keys differ", c.kind, i)
			}
		}
	}
}

const ivAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// ivGroupCheck is the Luhn mod 32 check of §18 over (g, c0..c3).
func ivGroupCheck(g int, data []byte) byte {
	vals := append([]byte{byte(g)}, data...)
	factor, sum := 2, 0
	for i := len(vals) - 1; i >= 0; i-- {
		p := factor * int(vals[i])
		factor = 3 - factor
		sum += p/32 + p%32
	}
	return byte((32 - sum%32) % 32)
}

// ivParsePhrase reads a recovery phrase as §18 describes; on failure it
// returns the 1-based group at fault, or 0 for the phrase as a whole.
func ivParsePhrase(text string) ([]byte, int, bool) {
	fields := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return r == ' ' || r == '-' })
	var groups []string
	switch joined := strings.Join(fields, ""); {
	case len(fields) == 8:
		groups = fields
	case len(fields) == 1 && len(joined) == 40:
		for i := 0; i < 40; i += 5 {
			groups = append(groups, joined[i:i+5])
		}
	default:
		return nil, 0, false
	}
	var bits []byte // one 5-bit value per data character
	for g, grp := range groups {
		if len(grp) != 5 {
			return nil, g + 1, false
		}
		var vals []byte
		for _, c := range []byte(strings.NewReplacer("o", "0", "i", "1", "l", "1").Replace(grp)) {
			i := strings.IndexByte(ivAlphabet, c)
			if i < 0 {
				return nil, g + 1, false
			}
			vals = append(vals, byte(i))
		}
		if ivGroupCheck(g, vals[:4]) != vals[4] {
			return nil, g + 1, false
		}
		bits = append(bits, vals[:4]...)
	}
	secret := make([]byte, 20)
	for i, v := range bits {
		for b := range 5 {
			if v&(16>>b) != 0 {
				pos := i*5 + b
				secret[pos/8] |= 0x80 >> (pos % 8)
			}
		}
	}
	return secret, 0, true
}

// ivOpenBackup follows the reader of §18 Backup file.
func ivOpenBackup(secret, file []byte) (string, []byte) {
	const magic = "kintsugi backup\n"
	if len(file) < 17 || string(file[:16]) != magic {
		return "not-backup", nil
	}
	switch {
	case file[16] > 1:
		return "newer-version", nil
	case file[16] != 1:
		return "not-backup", nil
	}
	if len(file) < 89+16 {
		return "damaged", nil
	}
	salt, check, nonce := file[17:49], file[49:65], file[65:89]
	want, _ := hkdf.Key(sha256.New, secret, salt, "kintsugi backup check v1", 16)
	if !bytes.Equal(want, check) {
		return "wrong-phrase", nil
	}
	key, _ := hkdf.Key(sha256.New, secret, salt, "kintsugi backup key v1", 32)
	plain, ok := secretbox.Open(nil, file[89:], (*[24]byte)(nonce), (*[32]byte)(key))
	if !ok {
		return "damaged", nil
	}
	return "open", plain
}

func TestBackupVectorsIndependent(t *testing.T) {
	var vs []struct {
		Name   string `json:"name"`
		Secret hx     `json:"secret"`
		Phrase string `json:"phrase"`
		File   hx     `json:"file"`
		Expect string `json:"expect"`
	}
	readJSON(t, filepath.Join("testdata", "backup-vectors.json"), &vs)
	if len(vs) == 0 {
		t.Fatal("no backup vectors")
	}
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			secret, group, ok := ivParsePhrase(v.Phrase)
			if !ok {
				if v.Expect != fmt.Sprintf("phrase-group:%d", group) {
					t.Fatalf("phrase refused at group %d; want %s", group, v.Expect)
				}
				return
			}
			if !bytes.Equal(secret, v.Secret) {
				t.Fatalf("phrase spells %x, file says %x", secret, []byte(v.Secret))
			}
			got, plain := ivOpenBackup(secret, v.File)
			if got == "open" {
				got += ":" + string(plain)
			}
			if got != v.Expect {
				t.Fatalf("got %s, want %s", got, v.Expect)
			}
		})
	}
}
