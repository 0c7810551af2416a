package crypto

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

func detSecret(t testing.TB, seed byte) *RecoverySecret {
	t.Helper()
	s, err := NewRecoverySecret(detRand(seed))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRecoveryPhraseRoundTrip(t *testing.T) {
	for i := range 200 {
		s, err := NewRecoverySecret(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		p := s.Phrase()
		groups := strings.Split(p, " ")
		if len(groups) != 8 {
			t.Fatalf("phrase %d has %d groups", i, len(groups))
		}
		for _, g := range groups {
			if len(g) != 5 || strings.Trim(g, phraseAlphabet) != "" {
				t.Fatalf("group %q is not 5 characters of the alphabet", g)
			}
		}
		got, err := ParseRecoveryPhrase(p)
		if err != nil || *got != *s {
			t.Fatalf("phrase %q parsed to %x, %v; want %x", p, got, err, s[:])
		}
	}
	// Every bit of the secret shows in the phrase.
	var zero, one RecoverySecret
	for i := range RecoverySecretSize * 8 {
		one = zero
		one[i/8] = 0x80 >> (i % 8)
		if one.Phrase() == zero.Phrase() {
			t.Fatalf("bit %d does not change the phrase", i)
		}
		if got, err := ParseRecoveryPhrase(one.Phrase()); err != nil || *got != one {
			t.Fatalf("bit %d does not round-trip: %v", i, err)
		}
	}
}

func TestRecoveryPhraseForgivingInput(t *testing.T) {
	s := detSecret(t, 1)
	p := s.Phrase()
	for name, in := range map[string]string{
		"upper case":      strings.ToUpper(p),
		"no spaces":       strings.ReplaceAll(p, " ", ""),
		"dashes":          strings.ReplaceAll(p, " ", "-"),
		"extra spaces":    "  " + strings.ReplaceAll(p, " ", "   ") + "\n",
		"o, i and l":      strings.NewReplacer("0", "o", "1", "l").Replace(p),
		"capital I and O": strings.NewReplacer("0", "O", "1", "I").Replace(p),
	} {
		if got, err := ParseRecoveryPhrase(in); err != nil || *got != *s {
			t.Errorf("%s: %q gave %v", name, in, err)
		}
	}
}

// Every single mistyped character is caught, and the error names its group.
func TestRecoveryPhraseEveryTypoNamesItsGroup(t *testing.T) {
	for _, seed := range []byte{1, 2, 3} {
		p := strings.ReplaceAll(detSecret(t, seed).Phrase(), " ", "")
		for i := range len(p) {
			for _, c := range []byte(phraseAlphabet) {
				if c == p[i] {
					continue
				}
				typo := []byte(p)
				typo[i] = c
				_, err := ParseRecoveryPhrase(string(typo))
				var pe *PhraseError
				if !errors.As(err, &pe) || pe.Group != i/5+1 || !errors.Is(err, ErrBadPhrase) {
					t.Fatalf("typo %q at %d: %v, want an error naming group %d", c, i, err, i/5+1)
				}
				if strings.Contains(err.Error(), string(typo[i/5*5:i/5*5+5])) {
					t.Fatalf("the error repeats the phrase: %v", err)
				}
			}
		}
	}
}

// A group typed in another group's place is always caught; swapped
// neighbouring characters almost always (Luhn mod 32 misses a few pairs).
func TestRecoveryPhraseSwaps(t *testing.T) {
	groups := strings.Fields(detSecret(t, 4).Phrase())
	for a := range groups {
		for b := a + 1; b < len(groups); b++ {
			h := append([]string(nil), groups...)
			h[a], h[b] = h[b], h[a]
			if _, err := ParseRecoveryPhrase(strings.Join(h, " ")); err == nil {
				t.Fatalf("groups %d and %d swapped went unnoticed", a+1, b+1)
			}
		}
	}
	// Every ordered pair of different values at every neighbouring pair
	// of positions in a group (data and check character alike).
	detected, total := 0, 0
	for g := range phraseGroups {
		for x := range byte(32) {
			for y := range byte(32) {
				if x == y {
					continue
				}
				for pos := range phraseGroupLen - 1 {
					vals := []byte{3, 14, 15, 9}
					vals = append(vals, groupCheck(g, vals))
					vals[pos], vals[pos+1] = x, y
					if groupCheck(g, vals[:4]) != vals[4] {
						continue // not a valid group: no transposition to test
					}
					vals[pos], vals[pos+1] = y, x
					total++
					if groupCheck(g, vals[:4]) != vals[4] {
						detected++
					}
				}
			}
		}
	}
	if total == 0 || detected*100 < total*95 {
		t.Fatalf("neighbouring swaps caught: %d of %d", detected, total)
	}
}

func TestRecoveryPhraseErrors(t *testing.T) {
	groups := strings.Fields(detSecret(t, 5).Phrase())
	for _, c := range []struct {
		name  string
		in    string
		group int
	}{
		{"empty", "", 0},
		{"seven groups", strings.Join(groups[:7], " "), 0},
		{"nine groups", strings.Join(append(groups, groups[0]), " "), 0},
		{"short run", strings.Join(groups, "")[:39], 0},
		{"group too short", strings.Join(append([]string{groups[0], groups[1][:4]}, groups[2:]...), " "), 2},
		{"group too long", strings.Join(append(groups[:7:7], groups[7]+"a"), " "), 8},
		{"u is not used", strings.Join(append([]string{"uuuuu"}, groups[1:]...), " "), 1},
		{"punctuation", strings.Join(append(groups[:3:3], "ab!cd", groups[4], groups[5], groups[6], groups[7]), " "), 4},
	} {
		_, err := ParseRecoveryPhrase(c.in)
		var pe *PhraseError
		if !errors.As(err, &pe) || pe.Group != c.group {
			t.Errorf("%s: %v, want an error for group %d", c.name, err, c.group)
		}
	}
}

func TestSealOpenBackup(t *testing.T) {
	s := detSecret(t, 6)
	msg := []byte(`{"the keys":"would be here"}`)
	file, err := SealBackup(rand.Reader, s, msg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(file, []byte("kintsugi backup\n\x01")) || len(file) != backupHeaderSize+len(msg)+16 {
		t.Fatalf("unexpected layout: % x", file[:20])
	}
	got, err := OpenBackup(s, file)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("open: %q, %v", got, err)
	}
	again, _ := SealBackup(rand.Reader, s, msg)
	if bytes.Equal(again, file) {
		t.Fatal("two seals of the same contents are identical: salt and nonce are not fresh")
	}
	if _, err := OpenBackup(detSecret(t, 7), file); !errors.Is(err, ErrWrongRecoveryPhrase) {
		t.Fatalf("wrong phrase: %v", err)
	}
	// Flip every byte: each is checked or authenticated, and the error
	// says what kind of problem it is.
	for i := range file {
		b := bytes.Clone(file)
		b[i] ^= 0x40
		var want error
		switch {
		case i < 16:
			want = ErrNotBackup
		case i == 16:
			want = ErrBackupVersion // 0x41 is a version from the future
		case i < 65:
			want = ErrWrongRecoveryPhrase // salt and check value
		default:
			want = ErrBackupDamaged // nonce and sealed contents
		}
		if got, err := OpenBackup(s, b); !errors.Is(err, want) {
			t.Fatalf("byte %d flipped: %q, %v; want %v", i, got, err, want)
		}
	}
	for n := range len(file) {
		if _, err := OpenBackup(s, file[:n]); err == nil {
			t.Fatalf("a file cut to %d bytes opened", n)
		}
	}
	b := bytes.Clone(file)
	b[16] = 0
	if err := CheckBackupHeader(b); !errors.Is(err, ErrNotBackup) {
		t.Fatalf("version 0: %v", err)
	}
}

// The grant check tells this device's grants from grants to another
// device and from altered ones.
func TestCheckSentGrant(t *testing.T) {
	alice, bob, eve := mustDevice(t, detRand(1)), mustDevice(t, detRand(2)), mustDevice(t, detRand(3))
	h := testHeader(alice, protocol.KindGrant)
	blob, err := SealGrant(rand.Reader, alice, h, bob.BoxPublic, []GrantInput{{Entry: protocol.BlobID{1}}})
	if err != nil {
		t.Fatal(err)
	}
	g, err := protocol.ParseGrant(blob)
	if err != nil {
		t.Fatal(err)
	}
	ka := NewKeyring(alice)
	if err := ka.CheckSentGrant(g, bob.BoxPublic); err != nil {
		t.Fatalf("own grant: %v", err)
	}
	if err := ka.CheckSentGrant(g, eve.BoxPublic); err == nil {
		t.Fatal("accepted for the wrong recipient")
	}
	if err := NewKeyring(eve).CheckSentGrant(g, bob.BoxPublic); err == nil {
		t.Fatal("another device's keyring accepted the grant as its own")
	}
	for _, i := range []int{0, 20, 60, protocol.HeaderSize + 3, len(blob) - 1} {
		b := bytes.Clone(blob)
		b[i] ^= 1
		if g, err := protocol.ParseGrant(b); err == nil && ka.CheckSentGrant(g, bob.BoxPublic) == nil {
			t.Fatalf("grant altered at byte %d passed", i)
		}
	}
}

// backupVector is one known-answer case in testdata/backup-vectors.json:
// a backup file, a phrase as typed, and what restoring must conclude.
type backupVector struct {
	Name   string `json:"name"`
	Secret string `json:"secret,omitempty"` // hex of the secret the phrase spells, when it parses
	Phrase string `json:"phrase"`
	File   string `json:"file"` // hex
	// Expect is "open:<contents>", "phrase-group:N" (N = 0 for the whole
	// phrase), "wrong-phrase", "damaged", "not-backup" or "newer-version".
	Expect string `json:"expect"`
}

// makeBackupVectors builds the vectors from fixed seeds. Changing the
// phrase or file format changes them; the test then fails until they are
// deliberately regenerated with `go test ./crypto -update`.
func makeBackupVectors(t *testing.T) []backupVector {
	s := detSecret(t, 40)
	contents := `{"version":1,"name":"Alex"}`
	file, err := SealBackup(detRand(41), s, []byte(contents))
	if err != nil {
		t.Fatal(err)
	}
	phrase := s.Phrase()
	hx := hex.EncodeToString
	sec := hx(s[:])
	v := []backupVector{
		{Name: "opens", Secret: sec, Phrase: phrase, File: hx(file), Expect: "open:" + contents},
		{Name: "opens, typed without spaces in capitals", Secret: sec, Phrase: strings.ToUpper(strings.ReplaceAll(phrase, " ", "")), File: hx(file), Expect: "open:" + contents},
		{Name: "opens, typed with dashes and o for 0", Secret: sec, Phrase: strings.NewReplacer(" ", "-", "0", "o").Replace(phrase), File: hx(file), Expect: "open:" + contents},
		{Name: "another backup's phrase", Secret: hx(detSecret(t, 42)[:]), Phrase: detSecret(t, 42).Phrase(), File: hx(file), Expect: "wrong-phrase"},
		{Name: "phrase of all zeros", Secret: strings.Repeat("00", RecoverySecretSize), Phrase: new(RecoverySecret).Phrase(), File: hx(file), Expect: "wrong-phrase"},
		{Name: "a group missing", Phrase: strings.Join(strings.Fields(phrase)[1:], " "), File: hx(file), Expect: "phrase-group:0"},
		{Name: "empty phrase", Phrase: "", File: hx(file), Expect: "phrase-group:0"},
	}
	groups := strings.Fields(phrase)
	for g := range groups {
		typo := append([]string(nil), groups...)
		c := []byte(typo[g])
		c[g%4] = phraseAlphabet[(strings.IndexByte(phraseAlphabet, c[g%4])+1)%32]
		typo[g] = string(c)
		v = append(v, backupVector{Name: fmt.Sprintf("typo in group %d", g+1), Phrase: strings.Join(typo, " "), File: hx(file), Expect: fmt.Sprintf("phrase-group:%d", g+1)})
	}
	swapped := append([]string(nil), groups...)
	swapped[2], swapped[3] = swapped[3], swapped[2]
	v = append(v, backupVector{Name: "groups 3 and 4 swapped", Phrase: strings.Join(swapped, " "), File: hx(file), Expect: "phrase-group:3"})
	flip := func(i int) string {
		b := bytes.Clone(file)
		b[i] ^= 0x40
		return hx(b)
	}
	for _, f := range []struct {
		name   string
		at     int
		expect string
	}{
		{"tampered magic", 0, "not-backup"}, {"tampered magic (last byte)", 15, "not-backup"},
		{"newer version", 16, "newer-version"},
		{"tampered salt", 17, "wrong-phrase"}, {"tampered salt (last byte)", 48, "wrong-phrase"},
		{"tampered check", 49, "wrong-phrase"}, {"tampered check (last byte)", 64, "wrong-phrase"},
		{"tampered nonce", 65, "damaged"}, {"tampered nonce (last byte)", 88, "damaged"},
		{"tampered tag", 89, "damaged"}, {"tampered contents", 89 + 16, "damaged"}, {"tampered last byte", len(file) - 1, "damaged"},
	} {
		v = append(v, backupVector{Name: f.name, Secret: sec, Phrase: phrase, File: flip(f.at), Expect: f.expect})
	}
	v0 := bytes.Clone(file)
	v0[16] = 0
	v = append(v,
		backupVector{Name: "version 0", Secret: sec, Phrase: phrase, File: hx(v0), Expect: "not-backup"},
		backupVector{Name: "truncated to the header", Secret: sec, Phrase: phrase, File: hx(file[:backupHeaderSize]), Expect: "damaged"},
		backupVector{Name: "truncated by one byte", Secret: sec, Phrase: phrase, File: hx(file[:len(file)-1]), Expect: "damaged"},
		backupVector{Name: "a key file, not a backup", Secret: sec, Phrase: phrase, File: hx([]byte(`{"version":1,"kdf":"argon2id"}`)), Expect: "not-backup"},
		backupVector{Name: "empty file", Secret: sec, Phrase: phrase, File: "", Expect: "not-backup"},
	)
	return v
}

func TestBackupVectors(t *testing.T) {
	path := filepath.Join("testdata", "backup-vectors.json")
	if *update {
		b, _ := json.MarshalIndent(makeBackupVectors(t), "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var vs []backupVector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	fresh := makeBackupVectors(t)
	if len(vs) != len(fresh) {
		t.Fatalf("testdata has %d backup vectors, code makes %d: run go test ./crypto -update after a deliberate format change", len(vs), len(fresh))
	}
	for i, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			if fresh[i] != v {
				t.Fatal("the phrase or file format no longer produces the recorded bytes: the format changed")
			}
			file, _ := hex.DecodeString(v.File)
			s, err := ParseRecoveryPhrase(v.Phrase)
			if g, ok := strings.CutPrefix(v.Expect, "phrase-group:"); ok {
				var pe *PhraseError
				if !errors.As(err, &pe) || fmt.Sprint(pe.Group) != g {
					t.Fatalf("phrase %q: %v; want %s", v.Phrase, err, v.Expect)
				}
				return
			}
			if err != nil {
				t.Fatalf("phrase %q: %v", v.Phrase, err)
			}
			if hex.EncodeToString(s[:]) != v.Secret {
				t.Fatalf("phrase spells %x, want %s", s[:], v.Secret)
			}
			got, err := OpenBackup(s, file)
			want := map[string]error{"wrong-phrase": ErrWrongRecoveryPhrase, "damaged": ErrBackupDamaged, "not-backup": ErrNotBackup, "newer-version": ErrBackupVersion}
			switch {
			case strings.HasPrefix(v.Expect, "open:"):
				if err != nil || string(got) != strings.TrimPrefix(v.Expect, "open:") {
					t.Fatalf("got %q, %v; want %s", got, err, v.Expect)
				}
			case want[v.Expect] != nil:
				if !errors.Is(err, want[v.Expect]) {
					t.Fatalf("got %q, %v; want %v", got, err, want[v.Expect])
				}
			default:
				t.Fatalf("bad expectation %q", v.Expect)
			}
		})
	}
}

func FuzzParseRecoveryPhrase(f *testing.F) {
	f.Add(detSecret(f, 1).Phrase())
	f.Add(strings.ToUpper(detSecret(f, 2).Phrase()))
	f.Add("")
	f.Add("uuuuu")
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseRecoveryPhrase(in)
		if err != nil {
			var pe *PhraseError
			if !errors.As(err, &pe) || pe.Group < 0 || pe.Group > phraseGroups {
				t.Fatalf("error is not a PhraseError: %v", err)
			}
			return
		}
		again, err := ParseRecoveryPhrase(s.Phrase())
		if err != nil || *again != *s {
			t.Fatalf("accepted %q, whose canonical phrase does not round-trip", in)
		}
	})
}

// FuzzOpenBackup feeds arbitrary files (a file an attacker may have
// altered) to the parser: it must never panic, and only the seeded file
// opens, to its contents.
func FuzzOpenBackup(f *testing.F) {
	s := detSecret(f, 9)
	good, _ := SealBackup(detRand(10), s, []byte("contents"))
	f.Add(good)
	f.Add(good[:backupHeaderSize])
	f.Add([]byte("kintsugi backup\n\x02"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, file []byte) {
		got, err := OpenBackup(s, file)
		if err == nil && (!bytes.Equal(file, good) || string(got) != "contents") {
			t.Fatalf("an altered backup opened: %q", got)
		}
	})
}
