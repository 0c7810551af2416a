package protocol

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestInviteCodeRoundTrip(t *testing.T) {
	c := &InviteCode{Relay: "https://relay.example.org"}
	copy(c.Journal[:], "0123456789abcdef")
	for i := range c.Secret {
		c.Secret[i] = byte(i * 7)
	}
	s := c.String()
	if !strings.HasPrefix(s, InvitePrefix) {
		t.Fatalf("code %q lacks prefix", s)
	}
	got, err := ParseInviteCode(s)
	if err != nil || *got != *c {
		t.Fatalf("parse = %+v, %v", got, err)
	}
	// Grouped, wrapped and upper-cased copies still parse.
	mangled := strings.ToUpper(s[:20]) + " -\n" + s[20:]
	if got, err := ParseInviteCode(mangled); err != nil || *got != *c {
		t.Fatalf("mangled parse = %+v, %v", got, err)
	}
	// Any single changed character is caught.
	for i := len(InvitePrefix); i < len(s); i++ {
		b := []byte(s)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		if _, err := ParseInviteCode(string(b)); !errors.Is(err, ErrBadInviteCode) {
			t.Fatalf("changed char %d: %v", i, err)
		}
	}
	if _, err := ParseInviteCode(s[:len(s)-3]); !errors.Is(err, ErrBadInviteCode) {
		t.Fatalf("truncated: %v", err)
	}
	if _, err := ParseInviteCode("hello"); !errors.Is(err, ErrBadInviteCode) {
		t.Fatalf("garbage: %v", err)
	}
}

func joinBlob(seq uint64, prev BlobID) []byte {
	h := Header{Kind: KindJoin, Seq: seq, Prev: prev}
	b := h.Marshal(nil)
	b = append(b, make([]byte, 32+NonceSize+SecretboxOverhead+3)...)
	return b
}

func TestParseHeader(t *testing.T) {
	ok := joinBlob(1, BlobID{})
	h, err := ParseHeader(ok)
	if err != nil || h.Kind != KindJoin || h.Seq != 1 {
		t.Fatalf("parse = %+v, %v", h, err)
	}
	bad := map[string][]byte{
		"short":              ok[:HeaderSize-1],
		"seq zero":           joinBlob(0, BlobID{}),
		"seq 2 without prev": joinBlob(2, BlobID{}),
		"seq 1 with prev":    joinBlob(1, BlobID{1}),
		"unknown kind":       append([]byte{BlobVersion, 9}, ok[2:]...),
		"bad version":        append([]byte{2}, ok[1:]...),
		"too large":          append(bytes.Clone(ok), make([]byte, MaxBlobSize)...),
		"truncated body":     ok[:HeaderSize+10],
	}
	for name, b := range bad {
		if _, err := ParseHeader(b); !errors.Is(err, ErrBadBlob) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func TestCodeTable(t *testing.T) {
	for _, ce := range codeErrors {
		e := (&Error{Code: ce.code, Message: "m"}).Err()
		if !errors.Is(e, ce.err) {
			t.Errorf("code %s does not unwrap to its sentinel", ce.code)
		}
	}
	if CodeOf(ErrAuthFailed) != CodeAuthFailed || CodeOf(errors.New("x")) != CodeInternal {
		t.Fatal("CodeOf picks the wrong code")
	}
	if !errors.Is((&Error{Code: "from-the-future"}).Err(), ErrRelayInternal) {
		t.Fatal("unknown code should read as internal")
	}
	// The relay's message is what a person reads; with none, the code's
	// own words stand in rather than a blank error.
	if got := (&Error{Code: CodeRateLimited, Message: "slow down, please"}).Err().Error(); got != "slow down, please" {
		t.Fatalf("error with a message reads %q", got)
	}
	if got := (&Error{Code: CodeRateLimited}).Err().Error(); got != ErrRateLimited.Error() {
		t.Fatalf("error without a message reads %q", got)
	}
	// The retry hint becomes a duration, capped so a hostile relay cannot
	// overflow it.
	var re *RelayError
	if !errors.As((&Error{Code: CodeRateLimited, RetryAfterMS: 1500}).Err(), &re) || re.RetryAfter != 1500*time.Millisecond {
		t.Fatalf("retry hint of 1500ms reads %v", re)
	}
	if !errors.As((&Error{Code: CodeRateLimited, RetryAfterMS: 1 << 63}).Err(), &re) || re.RetryAfter != 24*time.Hour {
		t.Fatalf("a huge retry hint reads %v, want it capped at a day", re.RetryAfter)
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add(joinBlob(1, BlobID{}))
	f.Add(joinBlob(3, BlobID{7}))
	g := (&Header{Kind: KindGrant, Seq: 1}).Marshal(nil)
	g = append(g, make([]byte, KeyIDSize)...)
	g = append(g, 0, 1)
	g = append(g, make([]byte, GrantItemSize+GrantBindingSize)...)
	f.Add(g)
	e := (&Header{Kind: KindEntry, Seq: 1}).Marshal(nil)
	e = append(e, make([]byte, NonceSize)...)
	e = append(e, 1)
	e = append(e, make([]byte, RecipientSize+SecretboxOverhead)...)
	f.Add(e)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			return
		}
		if got := h.Marshal(nil); !bytes.Equal(got, b[:HeaderSize]) {
			t.Fatalf("header does not round-trip: %x vs %x", got, b[:HeaderSize])
		}
	})
}

func FuzzParseInviteCode(f *testing.F) {
	c := &InviteCode{Relay: "ws://127.0.0.1:8080"}
	f.Add(c.String())
	f.Add("ks1")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseInviteCode(s)
		if err != nil {
			return
		}
		again, err := ParseInviteCode(c.String())
		if err != nil || *again != *c {
			t.Fatalf("round trip: %+v, %v", again, err)
		}
	})
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"type":"put","id":1,"journal":"00112233445566778899aabbccddeeff","blob":"AAEC"}`))
	f.Add([]byte(`{"type":"hello","version":1,"relay_id":"r","challenge":"AAAA"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := Decode(b)
		if err != nil {
			return
		}
		var p Put
		_ = DecodeAs(b, &p)
		if env.Type == "" {
			t.Fatal("decoded an envelope without a type")
		}
	})
}

func FuzzParsePurged(f *testing.F) {
	h := Header{Kind: KindEntry, Seq: 2, Prev: BlobID{1}}
	f.Add(append(h.Marshal(nil), make([]byte, 32)...))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, chain, err := ParsePurged(b)
		if err != nil {
			return
		}
		if len(b) != PurgedRecordSize || !bytes.Equal(h.Marshal(nil), b[:HeaderSize]) || !bytes.Equal(chain[:], b[HeaderSize:]) {
			t.Fatal("purged record does not round-trip")
		}
	})
}

func TestLinkCodeIsTellableFromAnInvite(t *testing.T) {
	c := InviteCode{Relay: "wss://relay.example", Journal: JournalID{1, 2}, Secret: [32]byte{3}, Link: true}
	s := c.String()
	if !strings.HasPrefix(s, LinkPrefix) {
		t.Fatalf("link code %q does not start with %q", s, LinkPrefix)
	}
	got, err := ParseInviteCode(s)
	if err != nil || *got != c {
		t.Fatalf("parse(%q) = %+v, %v", s, got, err)
	}
	c.Link = false
	got, err = ParseInviteCode(c.String())
	if err != nil || *got != c {
		t.Fatalf("an invite parsed as %+v, %v", got, err)
	}
}
