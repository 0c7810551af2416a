package ui_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/client/clienttest"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
	"github.com/kintsugi-journal/kintsugi/ui"
)

func TestRespond(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	alex, sam := clienttest.NewAccount(t, "Alex"), clienttest.NewAccount(t, "Sam")
	aj, sj, _ := clienttest.Pair(t, relay.URL(), alex, sam)
	clienttest.Sync(t, aj)
	write := func(j *client.Journal, p client.Payload) client.Entry {
		t.Helper()
		en, err := j.Write(p)
		if err != nil {
			t.Fatal(err)
		}
		return en
	}
	question := write(sj, client.Payload{Kind: client.KindQuestion, Text: "Did you tell anyone else?"})
	heard := write(sj, client.Payload{Kind: client.KindEntry, Text: "Today was heavy.", ListenOnly: true})
	plain := write(sj, client.Payload{Kind: client.KindEntry, Text: "We could walk on Sunday."})
	clienttest.Sync(t, sj)
	mine := write(aj, client.Payload{Kind: client.KindQuestion, Text: "What do you need from me this week?"})
	clienttest.Sync(t, aj)

	h := start(t, alex, aj, nil)
	h.login()
	h.unlock()

	// The questions page: Sam's waits on Alex; Alex's own waits on Sam.
	_, body := h.get("/questions")
	forYou, fromYou := strings.Index(body, "Asked of you"), strings.Index(body, "You asked")
	q, m := strings.Index(body, question.Text), strings.Index(body, mine.Text)
	if forYou < 0 || fromYou < 0 || !(forYou < q && q < fromYou && fromYou < m) {
		t.Fatalf("questions page:\n%s", body)
	}

	// Each entry offers only the responses it takes.
	offers := func(en client.Entry) string {
		_, body := h.get("/entry/" + en.ID)
		var got []string
		for _, as := range []string{"answer", "needtime", "followup", "ack", "reply"} {
			if strings.Contains(body, `name="as" value="`+as+`"`) {
				got = append(got, as)
			}
		}
		return strings.Join(got, ",")
	}
	for _, tc := range []struct {
		en   client.Entry
		want string
	}{
		{question, "answer,needtime,followup,ack"},
		{mine, "followup"},
		{heard, "ack"},
		{plain, "ack,reply"},
	} {
		if got := offers(tc.en); got != tc.want {
			t.Errorf("%q offers %s, want %s", tc.en.Text, got, tc.want)
		}
	}

	_, page := h.get("/entry/" + question.ID)
	csrf := h.csrf(page)
	respond := func(en client.Entry, as, text string) (*http.Response, string) {
		return h.post("/entry/"+en.ID+"/respond", url.Values{"csrf": {csrf}, "as": {as}, "text": {text}})
	}
	// An empty answer is refused, and saves nothing.
	if resp, body := respond(question, "answer", " "); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "there is no text to save") {
		t.Errorf("empty answer: %s", resp.Status)
	}
	// A reply to a listen-only entry is refused, keeping the words.
	if resp, body := respond(heard, "reply", "but I think"); resp.StatusCode != http.StatusConflict || !strings.Contains(body, `<div class="text draft">but I think</div>`) || !strings.Contains(body, "this entry asked to be heard, not answered") {
		t.Errorf("reply to listen-only: %s\n%s", resp.Status, body)
	}
	if resp, _ := respond(question, "shrug", "x"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("an unknown response: %s", resp.Status)
	}
	// "I need time", with no words, then an answer.
	resp, _ := respond(question, "needtime", "")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("need time: %s", resp.Status)
	}
	_, body = h.get(resp.Header.Get("Location"))
	if !strings.Contains(body, "Sam will see that you need time with this question. That is an honest answer too.") {
		t.Errorf("after need time:\n%s", body)
	}
	if resp, _ := respond(question, "answer", "No. Nobody else."); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("answer: %s", resp.Status)
	}
	if resp, _ := respond(heard, "ack", "I hear you"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("ack: %s", resp.Status)
	}
	if resp, _ := respond(plain, "reply", "Yes, let's."); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("reply: %s", resp.Status)
	}
	if resp, _ := respond(mine, "followup", "Even a small thing."); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("follow-up: %s", resp.Status)
	}
	// What the client now holds.
	r, err := aj.Reader()
	if err != nil {
		t.Fatal(err)
	}
	got, _ := r.Get(question.ID)
	if got.State != "answered" || len(got.Answers) != 2 {
		t.Errorf("the question is %s with %d answers, want answered with 2", got.State, len(got.Answers))
	}
	for _, en := range []client.Entry{heard, plain, mine} {
		if got, _ := r.Get(en.ID); len(got.Responses) != 1 {
			t.Errorf("%q has %d responses, want 1", en.Text, len(got.Responses))
		}
	}
	// The question no longer waits on Alex.
	if _, body := h.get("/questions"); !strings.Contains(body, "Nothing waits on you.") {
		t.Errorf("questions after answering:\n%s", body)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	alex, sam := clienttest.NewAccount(t, "Alex"), clienttest.NewAccount(t, "Sam")
	aj, _, _ := clienttest.Pair(t, relay.URL(), alex, sam)
	clienttest.Sync(t, aj)
	sn, _, err := aj.SafetyNumber()
	if err != nil {
		t.Fatal(err)
	}
	h := start(t, alex, aj, nil)
	h.login()
	h.unlock()
	_, body := h.get("/verify")
	if !strings.Contains(body, "Safety number for you and Sam:") || !strings.Contains(body, "<code>"+sn[:35]+"</code><br><code>"+sn[36:]+"</code>") || !strings.Contains(body, "Compare it with Sam in person or on a call.") {
		t.Fatalf("verify page:\n%s", body)
	}
	csrf := h.csrf(body)
	if resp, body := h.post("/verify", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "nothing was recorded") {
		t.Errorf("confirm without the box: %s", resp.Status)
	}
	if _, p, _ := aj.SafetyNumber(); p.Verified {
		t.Fatal("verified without the box ticked")
	}
	resp, _ := h.post("/verify", url.Values{"csrf": {csrf}, "matches": {"1"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirm: %s", resp.Status)
	}
	if _, body := h.get(resp.Header.Get("Location")); !strings.Contains(body, "Noted that your safety numbers match, on this device.") {
		t.Errorf("after confirming:\n%s", body)
	}
	if _, body := h.get("/verify"); !strings.Contains(body, "You and Sam have already compared safety numbers.") || strings.Contains(body, `action="/verify"`) {
		t.Errorf("verify page after confirming:\n%s", body)
	}
	if _, p, _ := aj.SafetyNumber(); !p.Verified {
		t.Error("the journal does not record the confirmation")
	}

	// Before the partner joins there is nothing to compare.
	h2 := newHarness(t)
	h2.login()
	h2.unlock()
	if resp, body := h2.get("/verify"); resp.StatusCode != http.StatusConflict || !strings.Contains(body, `class="problem"`) {
		t.Errorf("verify before pairing: %s\n%s", resp.Status, body)
	}
}

func TestRevealTogether(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	alex, sam := clienttest.NewAccount(t, "Alex"), clienttest.NewAccount(t, "Sam")
	aj, sj, _ := clienttest.Pair(t, relay.URL(), alex, sam)
	clienttest.Sync(t, aj)
	ha, hs := start(t, alex, aj, nil), start(t, sam, sj, nil)
	for _, h := range []*harness{ha, hs} {
		h.login()
		h.unlock()
	}
	_, page := ha.get("/questions")
	csrfA := ha.csrf(page)
	// Asking: refusals keep the words.
	if resp, body := ha.post("/ask", url.Values{"csrf": {csrfA}, "kind": {"poem"}, "text": {"x"}}); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "is not a kind of question") {
		t.Errorf("ask a poem: %s", resp.Status)
	}
	if resp, body := ha.post("/ask", url.Values{"csrf": {csrfA}, "kind": {"together"}, "text": {"  "}}); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "there is no text to save") {
		t.Errorf("ask nothing: %s", resp.Status)
	}
	const q = "What is one thing you wish I understood?"
	resp, _ := ha.post("/ask", url.Values{"csrf": {csrfA}, "kind": {"together"}, "text": {q}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("ask: %s", resp.Status)
	}
	if _, body := ha.get(resp.Header.Get("Location")); !strings.Contains(body, "Saved your question (") || !strings.Contains(body, q) {
		t.Errorf("after asking:\n%s", body)
	}
	list, err := aj.Entries()
	if err != nil || len(list) != 1 || list[0].Kind != client.KindTogether {
		t.Fatalf("entries after asking: %+v %v", list, err)
	}
	id := list[0].ID

	// eventually waits (a failsafe, not a measurement) until h's page at
	// path contains want, syncing the test's own handles meanwhile.
	eventually := func(h *harness, path, want string) string {
		t.Helper()
		for range 200 {
			clienttest.Sync(t, aj)
			clienttest.Sync(t, sj)
			if _, body := h.get(path); strings.Contains(body, want) {
				return body
			}
		}
		_, body := h.get(path)
		t.Fatalf("%s never shows %q:\n%s", path, want, body)
		return ""
	}
	eventually(hs, "/questions", q)

	const alexSays, samSays = "That I am still here because I want to be.", "How small I felt, and for how long."
	answer := func(h *harness, text string) string {
		t.Helper()
		_, page := h.get("/entry/" + id)
		if !strings.Contains(page, `name="as" value="together"`) {
			t.Fatalf("no answer form on the question's page:\n%s", page)
		}
		resp, _ := h.post("/entry/"+id+"/respond", url.Values{"csrf": {h.csrf(page)}, "as": {"together"}, "text": {text}})
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("answer: %s", resp.Status)
		}
		_, body := h.get(resp.Header.Get("Location"))
		return body
	}
	if body := answer(ha, alexSays); !strings.Contains(body, "sealed to your own devices. It opens for Sam once they answer too.") || strings.Contains(body, `name="as" value="together"`) {
		t.Errorf("after Alex answers:\n%s", body)
	}
	// Sam's page: Alex answered, but the words are not there to read.
	eventually(hs, "/entry/"+id, "waiting-for-you")
	if _, body := hs.get("/entry/" + id); strings.Contains(body, alexSays) {
		t.Fatal("Sam can read Alex's answer before answering")
	}
	if body := answer(hs, samSays); !strings.Contains(body, "Alex has answered too, so both answers open for each other") {
		t.Errorf("after Sam answers:\n%s", body)
	}
	// Then both open, for both.
	eventually(hs, "/entry/"+id, alexSays)
	eventually(ha, "/entry/"+id, samSays)
	// Answering again is refused.
	_, page = ha.get("/entry/" + id)
	if resp, body := ha.post("/entry/"+id+"/respond", url.Values{"csrf": {ha.csrf(page)}, "as": {"together"}, "text": {"again"}}); resp.StatusCode != http.StatusConflict || !strings.Contains(body, "you have already answered this one") {
		t.Errorf("a second answer: %s", resp.Status)
	}
}

func TestCommitments(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	alex, sam := clienttest.NewAccount(t, "Alex"), clienttest.NewAccount(t, "Sam")
	aj, sj, _ := clienttest.Pair(t, relay.URL(), alex, sam)
	clienttest.Sync(t, aj)
	samsOwn, err := sj.Write(client.Payload{Kind: client.KindCommit, Every: "week", Text: "I will come to every session."})
	if err != nil {
		t.Fatal(err)
	}
	clienttest.Sync(t, sj)
	clienttest.Sync(t, aj)
	h := start(t, alex, aj, func(c *ui.Config) { c.Now = time.Now })
	h.login()
	h.unlock()
	_, page := h.get("/commitments")
	csrf := h.csrf(page)
	if !strings.Contains(page, "I will come to every session.") || strings.Contains(page, `action="/entry/`+samsOwn.ID+`/respond"`) {
		t.Errorf("Sam's commitment is missing, or offers Alex a check-in:\n%s", page)
	}
	for _, tc := range []struct {
		form url.Values
		says string
	}{
		{url.Values{"text": {"x"}, "every": {"month"}}, `&#34;month&#34; is not day or week`},
		{url.Values{"text": {" "}, "every": {"day"}}, "there is no text to save"},
	} {
		tc.form.Set("csrf", csrf)
		if resp, body := h.post("/commit", tc.form); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, tc.says) {
			t.Errorf("%v: %s", tc.form, resp.Status)
		}
	}
	const promise = "I will tell you my plans each evening."
	resp, _ := h.post("/commit", url.Values{"csrf": {csrf}, "text": {promise}, "every": {"day"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("commit: %s", resp.Status)
	}
	_, body := h.get(resp.Header.Get("Location"))
	if !strings.Contains(body, "Saved your commitment (") || !strings.Contains(body, promise) {
		t.Fatalf("after committing:\n%s", body)
	}
	var cm client.Entry
	for _, e := range mustEntries(t, aj) {
		if e.Text == promise {
			cm = e
		}
	}
	if !strings.Contains(body, `action="/entry/`+cm.ID+`/respond"`) || !strings.Contains(body, `<span class="none" title="`) {
		t.Fatalf("the new commitment has no check-in form or strip:\n%s", body)
	}
	// Kept, then an honest "not this time" the same day: the strip shows
	// the latest.
	resp, _ = h.post("/entry/"+cm.ID+"/respond", url.Values{"csrf": {csrf}, "as": {"kept"}})
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/commitments?") {
		t.Fatalf("check in: %s to %s", resp.Status, resp.Header.Get("Location"))
	}
	_, body = h.get(resp.Header.Get("Location"))
	if !strings.Contains(body, "Saved your check-in (") || !strings.Contains(body, `<span class="kept"`) {
		t.Errorf("after checking in:\n%s", body)
	}
	h.post("/entry/"+cm.ID+"/respond", url.Values{"csrf": {csrf}, "as": {"missed"}, "text": {"I forgot, and I am sorry."}})
	_, body = h.get("/commitments")
	i := strings.Index(body, promise)
	if i < 0 || !strings.Contains(body[i:], `<span class="missed"`) || strings.Contains(body[i:], `<span class="kept"`) {
		t.Errorf("the strip after a later 'not this time':\n%s", body)
	}
	// Checking in on Sam's commitment is refused.
	if resp, _ := h.post("/entry/"+samsOwn.ID+"/respond", url.Values{"csrf": {csrf}, "as": {"kept"}}); resp.StatusCode != http.StatusConflict {
		t.Errorf("check in on the partner's commitment: %s", resp.Status)
	}
}

func TestAgreements(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	alex, sam := clienttest.NewAccount(t, "Alex"), clienttest.NewAccount(t, "Sam")
	aj, sj, _ := clienttest.Pair(t, relay.URL(), alex, sam)
	clienttest.Sync(t, aj)
	proposal, err := sj.Write(client.Payload{Kind: client.KindAgree, Category: "boundary", Text: "No contact with the other person, at all."})
	if err != nil {
		t.Fatal(err)
	}
	clienttest.Sync(t, sj)
	clienttest.Sync(t, aj)
	h := start(t, alex, aj, nil)
	h.login()
	h.unlock()
	_, page := h.get("/agreements")
	csrf := h.csrf(page)
	if !strings.Contains(page, proposal.Text) || !strings.Contains(page, `name="as" value="accept"`) {
		t.Fatalf("Sam's proposal, with accept and decline:\n%s", page)
	}
	// Proposing: refusals keep the words.
	if resp, body := h.post("/agree", url.Values{"csrf": {csrf}, "kind": {"rule"}, "text": {"keep me"}}); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "is not boundary, value or practice") || !strings.Contains(body, ">keep me</textarea>") {
		t.Errorf("a rule: %s\n%s", resp.Status, body)
	}
	resp, _ := h.post("/agree", url.Values{"csrf": {csrf}, "kind": {"practice"}, "text": {"A walk together on Sundays."}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("propose: %s", resp.Status)
	}
	if _, body := h.get(resp.Header.Get("Location")); !strings.Contains(body, "Saved your proposed agreement (") {
		t.Errorf("after proposing:\n%s", body)
	}
	// Alex's own proposal offers no accept; Sam's does. Accept it.
	resp, _ = h.post("/entry/"+proposal.ID+"/respond", url.Values{"csrf": {csrf}, "as": {"accept"}})
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/agreements?") {
		t.Fatalf("accept: %s to %s", resp.Status, resp.Header.Get("Location"))
	}
	_, body := h.get(resp.Header.Get("Location"))
	if !strings.Contains(body, "it now stands for both of you") || strings.Contains(body, `name="as" value="accept"`) {
		t.Errorf("after accepting:\n%s", body)
	}
	r, _ := aj.Reader()
	if got, _ := r.Get(proposal.ID); got.State != "accepted" {
		t.Errorf("the proposal is %s, want accepted", got.State)
	}
	// A new version of it, from its page's link.
	_, body = h.get("/agreements?revises=" + proposal.ID)
	if !strings.Contains(body, `name="revises" value="`+proposal.ID+`"`) || !strings.Contains(body, ">"+proposal.Text+"</textarea>") {
		t.Fatalf("the revise form:\n%s", body)
	}
	resp, _ = h.post("/agree", url.Values{"csrf": {csrf}, "kind": {"boundary"}, "revises": {proposal.ID}, "text": {"No contact, and tell me if they reach out."}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("revise: %s", resp.Status)
	}
	r, _ = aj.Reader()
	if got, _ := r.Get(proposal.ID); got.State != "revised" {
		t.Errorf("the revised proposal is %s, want revised", got.State)
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	alex, sam := clienttest.NewAccount(t, "Alex"), clienttest.NewAccount(t, "Sam")
	aj, sj, _ := clienttest.Pair(t, relay.URL(), alex, sam)
	clienttest.Sync(t, aj)
	h := start(t, alex, aj, func(c *ui.Config) {
		c.Sentence = func(n client.Notice) string { return "notice " + string(n.Kind) + " about " + n.Who }
	})
	h.login()
	h.unlock()
	_, body := h.get("/status")
	for _, want := range []string{"<dd>Alex</dd>", "Sam (safety number not compared yet)", "<dd>nothing</dd>"} {
		if !strings.Contains(body, want) {
			t.Errorf("status lacks %s:\n%s", want, body)
		}
	}
	if strings.Contains(body, "Worth knowing") || strings.Contains(body, `action="/status/read"`) {
		t.Errorf("status shows warnings with none to show")
	}
	// Sam leaves: a notice, on the timeline's pointer and the status page,
	// until marked read.
	if err := sj.Leave(clienttest.Context(t)); err != nil {
		t.Fatal(err)
	}
	clienttest.Sync(t, aj)
	_, body = h.get("/")
	if !strings.Contains(body, `on the <a href="/status">status page</a>`) {
		t.Errorf("the timeline does not point to the warning:\n%s", body)
	}
	_, body = h.get("/status")
	if !strings.Contains(body, "notice partner-left about Sam.") || !strings.Contains(body, "left the journal on") {
		t.Fatalf("status after Sam left:\n%s", body)
	}
	// Marked read on its own, as `kintsugi status --ack ID` does.
	m := regexp.MustCompile(`name="notice" value="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("the warning has no Mark read button:\n%s", body)
	}
	resp, _ := h.post("/status/read", url.Values{"csrf": {h.csrf(body)}, "notice": {m[1]}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("mark read: %s", resp.Status)
	}
	_, body = h.get(resp.Header.Get("Location"))
	if !strings.Contains(body, "Marked 1 notice read.") || strings.Contains(body, "notice partner-left") {
		t.Errorf("status after marking read:\n%s", body)
	}
	if ns, err := aj.Notices(); err != nil || len(ns) != 1 || !ns[0].Acknowledged {
		t.Errorf("the journal's notices after marking read: %+v, %v", ns, err)
	}
	// Again: nothing new, and a made-up notice is refused.
	resp, _ = h.post("/status/read", url.Values{"csrf": {h.csrf(body)}})
	if _, body := h.get(resp.Header.Get("Location")); !strings.Contains(body, "Nothing new to mark read.") {
		t.Errorf("marking read with nothing to mark:\n%s", body)
	}
	if resp, _ := h.post("/status/read", url.Values{"csrf": {h.csrf(body)}, "notice": {"no-such-notice"}}); resp.StatusCode != http.StatusConflict {
		t.Errorf("marking a made-up notice read: %s", resp.Status)
	}
	if _, body := h.get("/"); strings.Contains(body, "worth knowing") {
		t.Errorf("the timeline still points to a warning marked read")
	}
}
