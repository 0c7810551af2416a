package client_test

import (
	"testing"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

func compareCode(t *testing.T, j *client.Journal) client.Comparison {
	t.Helper()
	c, err := j.Compare()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The documented limit, and the way round it: a relay that withholds a
// device's newest entry is not seen in-band (TestLyingRelayWithholdsTheNewest),
// but the two partners' compare codes differ while it does, and status
// shows the older entry as the last heard from that device. Once the
// relay delivers, the codes agree again.
func TestCompareCodeShowsWhatARelayWithholds(t *testing.T) {
	t.Parallel()
	p := lyingPair(t)
	write(t, p.aj, "alex: one")
	mustSync(t, p.aj)
	s := write(t, p.sj, "sam: one", "sam: two")
	mustSync(t, p.sj)
	mustSync(t, p.aj)
	agreed := compareCode(t, p.aj)
	if got := compareCode(t, p.sj); got.Code != agreed.Code || len(got.Heads) != 2 || len(agreed.Heads) != 2 {
		t.Fatalf("honest relay: alex %+v, sam %+v", agreed, got)
	}

	newest := write(t, p.sj, "sam: three, which the relay keeps from alex")
	p.toAlex(servertest.Drop(entries(newest...)))
	mustSync(t, p.sj)
	mustSync(t, p.aj)
	clean(t, "alex", p.aj) // nothing in-band shows it
	a, sm := compareCode(t, p.aj), compareCode(t, p.sj)
	if a.Code == sm.Code {
		t.Fatalf("the codes agree while the relay withholds sam's newest entry: %s", a.Code)
	}
	st := status(t, p.aj)
	if len(st.PartnerDevices) != 1 || st.PartnerDevices[0].Who != "sam" || st.PartnerDevices[0].Chain != s[1].ID || !st.PartnerDevices[0].Written.Equal(s[1].Created) {
		t.Fatalf("alex last heard from sam's device: %+v, want sam: two (%s)", st.PartnerDevices, s[1].ID[:8])
	}

	p.toAlex(servertest.Later(entries(newest...)))
	mustSync(t, p.aj)
	if a, sm := compareCode(t, p.aj), compareCode(t, p.sj); a.Code != sm.Code {
		t.Fatalf("once delivered: alex %s, sam %s", a.Code, sm.Code)
	}
	if st := status(t, p.aj); st.PartnerDevices[0].Chain != newest[0].ID {
		t.Fatalf("alex last heard from sam's device: %+v", st.PartnerDevices)
	}

	// Something written here and not sent yet is not in the code, and
	// is counted so the CLI can say to sync first.
	write(t, p.aj, "alex: not sent yet")
	if c := compareCode(t, p.aj); c.Code != sm.Code || c.Unsent != 1 {
		t.Fatalf("with an unsent entry: %+v", c)
	}
}

// On an honest relay every device of both partners computes the same
// code once all have synced, though each holds items the others cannot
// check: grants for another device, and a "reveal together" answer sealed
// to its author's devices only.
func TestCompareCodeAgreesAcrossDevices(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, sj, _ := pair(t, relay.URL(), alex, sam)
	write(t, aj, "alex: one")
	write(t, sj, "sam: one")
	mustSync(t, aj)
	mustSync(t, sj)
	_, pj := linkDevice(t, alex, "phone")
	all := map[string]*client.Journal{"sam": sj, "alex": aj, "alex's phone": pj}
	agree := func(when string) {
		t.Helper()
		for range 2 {
			for _, j := range []*client.Journal{sj, aj, pj} {
				mustSync(t, j)
			}
		}
		want := compareCode(t, sj)
		for who, j := range all {
			if got := compareCode(t, j); got.Code != want.Code {
				t.Errorf("%s: %s's code %s, sam's %s:\n %+v\n %+v", when, who, got.Code, want.Code, got.Heads, want.Heads)
			}
		}
	}
	// Sam re-boxes its history for the phone: a grant is its newest item.
	agree("after linking a phone")

	prompt, err := aj.Write(client.Payload{Kind: client.KindTogether, Text: "What do you hope for?"})
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, aj)
	mustSync(t, sj)
	if _, _, err := sj.TogetherAnswer(prompt.Short, "sam: alone, for now"); err != nil {
		t.Fatal(err)
	}
	agree("after a together answer")
}
