package crypto

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// golden holds fixed inputs and the outputs the code must keep producing
// for them: safety numbers and the invite and link key derivations. An
// independent client can check itself against testdata/golden.json.
type golden struct {
	SafetyNumbers []goldenSafety `json:"safety_numbers"`
	Invites       []goldenInvite `json:"invites"`
	Links         []goldenInvite `json:"links"`
}

type goldenSafety struct {
	A      string `json:"identity_a"` // Ed25519 public key, hex
	B      string `json:"identity_b"`
	Number string `json:"safety_number"`
}

type goldenInvite struct {
	Secret   string `json:"secret"`
	Token    string `json:"token"`
	AuthHash string `json:"auth_hash"`
	Key      string `json:"key"`
}

func makeGolden(t *testing.T) golden {
	var g golden
	for _, p := range [][2]byte{{1, 2}, {2, 1}, {1, 3}, {4, 5}, {6, 6}} {
		a, err := NewIdentity(detRand(p[0]))
		if err != nil {
			t.Fatal(err)
		}
		b, err := NewIdentity(detRand(p[1]))
		if err != nil {
			t.Fatal(err)
		}
		g.SafetyNumbers = append(g.SafetyNumbers, goldenSafety{hex.EncodeToString(a.Public), hex.EncodeToString(b.Public), SafetyNumber(a.Public, b.Public)})
	}
	for i := range 3 {
		var secret [32]byte
		for k := range secret {
			secret[k] = byte(i*32 + k)
		}
		for _, d := range []struct {
			derive func([32]byte) (*InviteKeys, error)
			out    *[]goldenInvite
		}{{DeriveInvite, &g.Invites}, {DeriveLink, &g.Links}} {
			k, err := d.derive(secret)
			if err != nil {
				t.Fatal(err)
			}
			*d.out = append(*d.out, goldenInvite{hex.EncodeToString(secret[:]), hex.EncodeToString(k.Token[:]), hex.EncodeToString(k.AuthHash[:]), hex.EncodeToString(k.Key[:])})
		}
	}
	return g
}

func TestGolden(t *testing.T) {
	path := filepath.Join("testdata", "golden.json")
	fresh := makeGolden(t)
	if *update {
		b, _ := json.MarshalIndent(fresh, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want golden
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if len(want.SafetyNumbers) != len(fresh.SafetyNumbers) || len(want.Invites) != len(fresh.Invites) || len(want.Links) != len(fresh.Links) {
		t.Fatal("testdata/golden.json does not match the cases the code makes: run go test ./crypto -update after a deliberate change")
	}
	for i, w := range want.SafetyNumbers {
		a, _ := hex.DecodeString(w.A)
		b, _ := hex.DecodeString(w.B)
		if got := SafetyNumber(a, b); got != w.Number {
			t.Errorf("safety number %d: got %q, want %q", i, got, w.Number)
		}
		if got := SafetyNumber(b, a); got != w.Number {
			t.Errorf("safety number %d is not the same from the other side: %q", i, got)
		}
	}
	check := func(what string, ws []goldenInvite, derive func([32]byte) (*InviteKeys, error)) {
		for i, w := range ws {
			s, _ := hex.DecodeString(w.Secret)
			k, err := derive([32]byte(s))
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(k.Token[:]) != w.Token || hex.EncodeToString(k.AuthHash[:]) != w.AuthHash || hex.EncodeToString(k.Key[:]) != w.Key {
				t.Errorf("%s %d: derivation changed", what, i)
			}
		}
	}
	check("invite", want.Invites, DeriveInvite)
	check("link", want.Links, DeriveLink)
	// A link and an invite from the same secret share nothing.
	for i := range want.Invites {
		if want.Invites[i].Key == want.Links[i].Key || want.Invites[i].Token == want.Links[i].Token {
			t.Errorf("case %d: a link code would work as an invite", i)
		}
	}
}
