package ui_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/client/clienttest"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
	"github.com/kintsugi-journal/kintsugi/ui"
)

func TestUnlockWithPassphrase(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.login()
	_, page := h.get("/unlock")
	csrf := h.csrf(page)
	// A wrong passphrase: the page says so kindly, and stays locked.
	resp, body := h.post("/unlock", url.Values{"csrf": {csrf}, "passphrase": {"not it"}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, `class="problem"`) {
		t.Fatalf("wrong passphrase: %s\n%s", resp.Status, body)
	}
	if strings.Contains(body, "not it") {
		t.Errorf("the page repeats the passphrase typed")
	}
	if resp, _ := h.get("/"); resp.Header.Get("Location") != "/unlock" {
		t.Fatalf("after a wrong passphrase / is %s to %q, want the unlock page", resp.Status, resp.Header.Get("Location"))
	}
	// An empty one.
	if resp, body := h.post("/unlock", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "the passphrase is empty") {
		t.Errorf("empty passphrase: %s\n%s", resp.Status, body)
	}
	// The right one, with characters a form escapes.
	h.unlock()
	if resp, body := h.get("/"); resp.StatusCode != http.StatusOK || !strings.Contains(body, "Nothing here yet") || !strings.Contains(body, `action="/lock"`) {
		t.Fatalf("timeline after unlocking: %s\n%s", resp.Status, body)
	}
	// Lock: the pages ask again, and the agent's session is locked too.
	_, page = h.get("/")
	resp, _ = h.post("/lock", url.Values{"csrf": {h.csrf(page)}})
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/unlock") {
		t.Fatalf("lock: %s to %q", resp.Status, resp.Header.Get("Location"))
	}
	if h.keys.lockCount() != 1 {
		t.Errorf("Lock locked the agent %d times, want once", h.keys.lockCount())
	}
	if resp, _ := h.get("/"); resp.Header.Get("Location") != "/unlock" {
		t.Errorf("after Lock / is %s, want the unlock page", resp.Status)
	}
	if _, body := h.get("/unlock?locked=1"); !strings.Contains(body, "Locked.") {
		t.Errorf("the unlock page after Lock does not say it locked:\n%s", body)
	}
}

func TestUnlockWithAgent(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.keys.setAgent(true)
	h.login()
	if resp, body := h.get("/"); resp.StatusCode != http.StatusOK || !strings.Contains(body, "Timeline") {
		t.Fatalf("with an unlocked session, / is %s:\n%s", resp.Status, body)
	}
	if resp, _ := h.get("/unlock"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("with an unlocked session /unlock is %s, want a redirect to the timeline", resp.Status)
	}
}

func TestIdleLock(t *testing.T) {
	t.Parallel()
	a, j := journalFor(t, "alex")
	h := start(t, a, j, func(c *ui.Config) { c.IdleLock = time.Hour })
	h.login()
	h.unlock()
	h.clock.add(59 * time.Minute)
	if resp, _ := h.get("/"); resp.StatusCode != http.StatusOK {
		t.Fatalf("after 59 idle minutes of an hour: %s", resp.Status)
	}
	// A live update is not the person: it does not keep it unlocked.
	h.clock.add(59 * time.Minute)
	req, _ := http.NewRequest("GET", h.base+"/", nil)
	req.Header.Set("X-Kintsugi-Live", "1")
	if resp, _ := h.do(req); resp.StatusCode != http.StatusOK {
		t.Fatalf("live update: %s", resp.Status)
	}
	h.clock.add(time.Minute)
	if resp, _ := h.get("/"); resp.Header.Get("Location") != "/unlock" {
		t.Fatalf("after an idle hour / is %s, want the unlock page", resp.Status)
	}
	if h.keys.lockCount() != 0 {
		t.Errorf("the idle lock locked the agent's session, which keeps its own time")
	}
}

func TestTimelinePagesAndFilters(t *testing.T) {
	t.Parallel()
	a, j := journalFor(t, "alex")
	var ps []client.Payload
	for i := range 120 {
		p := client.Payload{Kind: client.KindEntry, Text: fmt.Sprintf("entry number %03d", i)}
		if i%10 == 0 {
			p.Feelings = []string{"hope"}
		}
		ps = append(ps, p)
	}
	ps = append(ps, client.Payload{Kind: client.KindQuestion, Text: "what did you feel that night?"})
	if _, err := j.WriteMany(ps); err != nil {
		t.Fatal(err)
	}
	h := start(t, a, j, nil)
	h.login()
	h.unlock()

	_, body := h.get("/")
	if n := strings.Count(body, `<article class="entry`); n != ui.PageSize {
		t.Errorf("page 1 shows %d entries, want %d", n, ui.PageSize)
	}
	q := strings.Index(body, "what did you feel")
	newest, older := strings.Index(body, "entry number 119"), strings.Index(body, "entry number 071")
	if q < 0 || newest < 0 || older < 0 || !(q < newest && newest < older) || strings.Contains(body, "entry number 070") {
		t.Errorf("page 1 is not the newest 50, newest first")
	}
	if !strings.Contains(body, `href="/?page=2"`) || strings.Contains(body, `rel="prev"`) {
		t.Errorf("page 1 links: want Older to page 2 and no Newer")
	}
	_, body = h.get("/?page=3")
	if n := strings.Count(body, `<article class="entry`); n != 21 || !strings.Contains(body, "entry number 000") || !strings.Contains(body, `rel="prev"`) {
		t.Errorf("page 3 shows %d entries, want the oldest 21", n)
	}
	// Filters: kind, feeling, search, author; the pages keep them.
	_, body = h.get("/?kind=question")
	if n := strings.Count(body, `<article class="entry`); n != 1 || !strings.Contains(body, "what did you feel") {
		t.Errorf("kind=question shows %d entries", n)
	}
	_, body = h.get("/?feeling=hope")
	if n := strings.Count(body, `<article class="entry`); n != 12 {
		t.Errorf("feeling=hope shows %d entries, want 12", n)
	}
	_, body = h.get("/?q=NUMBER+11")
	if n := strings.Count(body, `<article class="entry`); n != 10 {
		t.Errorf("search 'NUMBER 11' shows %d entries, want 10 (110-119)", n)
	}
	_, body = h.get("/?q=entry&kind=entry")
	if !strings.Contains(body, `href="/?kind=entry&amp;page=2&amp;q=entry"`) {
		t.Errorf("the next page drops the filters")
	}
	_, body = h.get("/?author=partner")
	if !strings.Contains(body, "Nothing matches those filters.") {
		t.Errorf("author=partner before anyone joined should match nothing")
	}
	resp, body := h.get("/?kind=poem")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "&#34;poem&#34; is not a kind of entry") {
		t.Errorf("kind=poem: %s", resp.Status)
	}
	// An entry's own page.
	list, err := j.Entries()
	if err != nil {
		t.Fatal(err)
	}
	last := list[len(list)-1]
	resp, body = h.get("/entry/" + last.ID)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "what did you feel that night?") || !strings.Contains(body, "Entry "+last.Short) {
		t.Errorf("entry page: %s\n%s", resp.Status, body)
	}
	// An id that is no entry's: the last one's with its first byte
	// changed (to one it does not start with: "00" one time in 256).
	other := "00"
	if strings.HasPrefix(last.ID, other) {
		other = "ff"
	}
	if resp, body := h.get("/entry/" + other + last.ID[2:]); resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "there is no entry here") {
		t.Errorf("missing entry: %s", resp.Status)
	}
}

func TestWrite(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.login()
	h.unlock()
	_, page := h.get("/write")
	for _, label := range []string{`for="w-text"`, `for="w-other"`, `for="w-intensity"`, `for="w-tags"`, `name="listen"`, `value="grief"`, `type="range"`} {
		if !strings.Contains(page, label) {
			t.Errorf("the write page lacks %s", label)
		}
	}
	csrf := h.csrf(page)
	// Refusals keep what was typed and save nothing.
	for _, tc := range []struct {
		form url.Values
		says string
	}{
		{url.Values{"text": {"  "}}, "there is no text to save"},
		{url.Values{"text": {"keep me"}, "tags": {strings.Repeat("x", 41)}}, "is not a tag kintsugi can store"},
		{url.Values{"text": {"keep me"}, "other": {strings.Repeat("y", 41)}}, "is not a feeling word kintsugi can store"},
		{url.Values{"text": {"keep me"}, "rate": {"1"}, "intensity": {"11"}}, "intensity 11 is outside 0 to 10"},
	} {
		tc.form.Set("csrf", csrf)
		resp, body := h.post("/write", tc.form)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, tc.says) {
			t.Errorf("%v: %s, want 400 saying %q", tc.form, resp.Status, tc.says)
		}
		if txt := tc.form.Get("text"); strings.TrimSpace(txt) != "" && !strings.Contains(body, ">"+txt+"</textarea>") {
			t.Errorf("%v: the text typed is not kept", tc.form)
		}
	}
	if list, _ := h.j.Entries(); len(list) != 0 {
		t.Fatalf("refused forms saved %d entries", len(list))
	}
	resp, _ := h.post("/write", url.Values{
		"csrf": {csrf}, "text": {"I was so angry\r\nand then so tired"}, "feeling": {"grief", "hope"}, "other": {"Tired, "},
		"rate": {"1"}, "intensity": {"7"}, "listen": {"1"}, "tags": {"#Sunday-talk, evening"},
	})
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/?saved=") {
		t.Fatalf("write: %s to %q", resp.Status, resp.Header.Get("Location"))
	}
	list, err := h.j.Entries()
	if err != nil || len(list) != 1 {
		t.Fatalf("entries after writing: %v %v", list, err)
	}
	en := list[0]
	if en.Text != "I was so angry\nand then so tired" || strings.Join(en.Feelings, ",") != "grief,hope,tired" || en.Intensity == nil || *en.Intensity != 7 || !en.ListenOnly || strings.Join(en.Tags, ",") != "sunday-talk,evening" {
		t.Errorf("saved %+v", en)
	}
	_, body := h.get(resp.Header.Get("Location"))
	if !strings.Contains(body, "Saved your entry ("+en.Short+") on this device.") || !strings.Contains(body, "I was so angry") {
		t.Errorf("the timeline after writing:\n%s", body)
	}
	// Without "say how strong", the slider's value is not saved.
	h.post("/write", url.Values{"csrf": {csrf}, "text": {"just this"}, "intensity": {"3"}})
	list, _ = h.j.Entries()
	if len(list) != 2 || list[1].Intensity != nil {
		t.Errorf("an intensity was saved without being asked for: %+v", list)
	}
}

// TestPassphraseNotKept checks that the passphrase posted to unlock does
// not end up on any page.
func TestPassphraseNotKept(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.login()
	h.unlock()
	for _, p := range []string{"/", "/write", "/unlock"} {
		if _, body := h.get(p); strings.Contains(body, clienttest.Passphrase) {
			t.Errorf("%s shows the passphrase", p)
		}
	}
}

func TestTimelineSaysHowSyncGoes(t *testing.T) {
	t.Parallel()
	a, j := journalFor(t, "alex")
	h := start(t, a, j, func(c *ui.Config) {
		c.Notes = func(*client.Journal) []string {
			return []string{"Note: 2 entries from Sam are not on this device yet."}
		}
	})
	h.login()
	h.unlock()
	_, body := h.get("/")
	if !strings.Contains(body, `<ul class="notes"><li>Note: 2 entries from Sam are not on this device yet.</li></ul>`) {
		t.Errorf("the timeline does not show the notes:\n%s", body)
	}
	// The watch connects to the relay; the timeline then says so.
	deadline := time.Now().Add(30 * time.Second) // a failsafe, not a measurement
	for !strings.Contains(body, "Connected to the relay and up to date.") {
		if time.Now().After(deadline) {
			t.Fatalf("the timeline never says it is connected:\n%s", body)
		}
		time.Sleep(20 * time.Millisecond)
		_, body = h.get("/")
	}
}

func TestFeelingsChart(t *testing.T) {
	t.Parallel()
	a, j := journalFor(t, "alex")
	n := func(i int) *int { return &i }
	for _, p := range []client.Payload{
		{Kind: client.KindEntry, Text: "a", Feelings: []string{"grief"}, Intensity: n(8), Created: time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC)},
		{Kind: client.KindEntry, Text: "b", Feelings: []string{"grief"}, Intensity: n(4), Created: time.Date(2026, 11, 12, 12, 0, 0, 0, time.UTC)},
		{Kind: client.KindEntry, Text: "c", Feelings: []string{"hope"}, Created: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)},
		{Kind: client.KindEntry, Text: "d", Feelings: []string{"anger"}, Intensity: n(9), Created: time.Date(2025, 1, 15, 12, 0, 0, 0, time.UTC)},
	} {
		if _, err := j.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	h := start(t, a, j, nil)
	h.clock.set(time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC))
	h.login()
	h.unlock()
	_, body := h.get("/feelings")
	for _, want := range []string{
		`<th scope="col">Jan <span class="yr">2026</span></th>`, `<th scope="col">Dec <span class="yr">2026</span></th>`,
		`<th scope="row">grief</th>`, `<td class="lvl-8" title="named twice in November; the strongest 8 of 10">8`,
		`<th scope="row">hope</th>`, `<td class="lvl-named" title="named once in December, without an intensity">·`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the chart lacks %s", want)
		}
	}
	if strings.Contains(body, "anger") || strings.Contains(body, "Dec 2025") {
		t.Errorf("the chart shows more than 12 months")
	}
	_, body = h.get("/feelings?months=24")
	if !strings.Contains(body, "anger") || !strings.Contains(body, `<th scope="col">Jan <span class="yr">2025</span></th>`) {
		t.Errorf("24 months do not reach January 2025")
	}
	_, body = h.get("/feelings?months=7")
	if strings.Count(body, `<th scope="col">`) != 2+12 {
		t.Errorf("months=7 (not offered) should show the default 12 months")
	}
}

func TestPromptsAndReflect(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.login()
	h.unlock()
	pr := client.Stages[4].Prompts[1]
	_, body := h.get("/prompts")
	if !strings.Contains(body, `href="/reflect?prompt=`+pr.ID+`"`) || !strings.Contains(body, client.Stages[6].Name) {
		t.Fatalf("prompts page:\n%s", body)
	}
	_, body = h.get("/reflect?prompt=" + pr.ID)
	if !strings.Contains(body, "Prompt "+pr.ID+":") {
		t.Fatalf("reflect page:\n%s", body)
	}
	csrf := h.csrf(body)
	if resp, _ := h.get("/reflect?prompt=9.9"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("prompt 9.9: %s", resp.Status)
	}
	if resp, body := h.post("/reflect", url.Values{"csrf": {csrf}, "prompt": {pr.ID}, "text": {" "}}); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "there is no text to save") {
		t.Errorf("empty reflection: %s", resp.Status)
	}
	resp, _ := h.post("/reflect", url.Values{"csrf": {csrf}, "prompt": {pr.ID}, "text": {"What I learned about myself."}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("reflect: %s", resp.Status)
	}
	if _, body := h.get(resp.Header.Get("Location")); !strings.Contains(body, "Saved your reflection (") {
		t.Errorf("after reflecting:\n%s", body)
	}
	h.post("/reflect", url.Values{"csrf": {csrf}, "text": {"On my own."}})
	list := mustEntries(t, h.j)
	if len(list) != 2 || list[0].Kind != client.KindReflection || list[0].Prompt != pr.ID || list[1].Prompt != "" {
		t.Errorf("reflections saved: %+v", list)
	}
}

func TestExport(t *testing.T) {
	t.Parallel()
	a, j := journalFor(t, "alex")
	var asked client.Query
	h := start(t, a, j, func(c *ui.Config) {
		c.Export = func(by string, j *client.Journal, q client.Query, format string) ([]byte, int, error) {
			asked = q
			r, err := j.Reader()
			if err != nil {
				return nil, 0, err
			}
			list, err := r.Query(q)
			return []byte(fmt.Sprintf("%s exported %d as %s", by, len(list), format)), len(list), err
		}
	})
	h.login()
	h.unlock()
	h.j.Write(client.Payload{Kind: client.KindEntry, Text: "for the counsellor", Feelings: []string{"hope"}})
	_, page := h.get("/export")
	if !strings.Contains(page, "is NOT encrypted") {
		t.Errorf("the export page does not say the file is not encrypted")
	}
	csrf := h.csrf(page)
	resp, body := h.post("/export", url.Values{"csrf": {csrf}, "format": {"markdown"}, "feeling": {"hope"}})
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), `attachment; filename="kintsugi-export-`+h.clock.Now().Format("2006-01-02")+`.md"`) || body != "alex exported 1 as markdown" {
		t.Errorf("export: %s %q %q", resp.Status, resp.Header.Get("Content-Disposition"), body)
	}
	if !asked.Feelings["hope"] || asked.NoText {
		t.Errorf("export asked for %+v", asked)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("the export may be cached")
	}
	if resp, _ := h.post("/export", url.Values{"csrf": {csrf}, "format": {"pdf"}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("pdf: %s", resp.Status)
	}
	if resp, body := h.post("/export", url.Values{"csrf": {csrf}, "format": {"json"}, "q": {"nowhere"}}); resp.StatusCode != http.StatusOK || !strings.Contains(body, "Nothing matches those choices") {
		t.Errorf("nothing to export: %s", resp.Status)
	}
	// Without the form's token there is no download.
	if resp, _ := h.post("/export", url.Values{"format": {"markdown"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("export without the token: %s", resp.Status)
	}
}

func TestEditAndRetract(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.login()
	h.unlock()
	five := 5
	en, err := h.j.Write(client.Payload{Kind: client.KindEntry, Text: "I said it badly.", Feelings: []string{"shame"}, Intensity: &five})
	if err != nil {
		t.Fatal(err)
	}
	_, page := h.get("/entry/" + en.ID)
	if !strings.Contains(page, `name="as" value="edit"`) || !strings.Contains(page, ">I said it badly.</textarea>") || !strings.Contains(page, `name="as" value="retract"`) {
		t.Fatalf("own entry's page:\n%s", page)
	}
	csrf := h.csrf(page)
	change := func(form url.Values) (*http.Response, string) {
		form.Set("csrf", csrf)
		return h.post("/entry/"+en.ID+"/respond", form)
	}
	if resp, body := change(url.Values{"as": {"edit"}, "text": {" "}}); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "the new version is empty") {
		t.Errorf("empty edit: %s", resp.Status)
	}
	resp, _ := change(url.Values{"as": {"edit"}, "text": {"What I meant was: I am sorry."}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("edit: %s", resp.Status)
	}
	_, body := h.get(resp.Header.Get("Location"))
	if !strings.Contains(body, "Saved a new version (") || !strings.Contains(body, "Earlier versions") || !strings.Contains(body, "I said it badly.") {
		t.Errorf("after editing:\n%s", body)
	}
	r, _ := h.j.Reader()
	if got, _ := r.Get(en.ID); got.Text != "What I meant was: I am sorry." || !got.Edited || len(got.Feelings) != 1 || got.Intensity == nil || *got.Intensity != 5 {
		t.Errorf("the entry after editing: %+v", got)
	}
	if resp, body := change(url.Values{"as": {"retract"}}); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "nothing was retracted") {
		t.Errorf("retract without the box: %s", resp.Status)
	}
	resp, _ = change(url.Values{"as": {"retract"}, "sure": {"1"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("retract: %s", resp.Status)
	}
	_, body = h.get(resp.Header.Get("Location"))
	if !strings.Contains(body, "Retracted it (") || strings.Contains(body, "I am sorry") || strings.Contains(body, `name="as" value="edit"`) {
		t.Errorf("after retracting:\n%s", body)
	}
}

// An entry not sent (the relay is down, so nothing can send it): the
// retract box and the result say the partner never gets its words, not
// that a copy they read may remain.
func TestRetractNotSent(t *testing.T) {
	t.Parallel()
	_, h, en, page := entryNotSent(t)
	if !strings.Contains(page, "It has not been sent yet") || strings.Contains(page, "a copy they already read may remain") {
		t.Fatalf("the retract box of an entry not sent:\n%s", page)
	}
	resp, _ := h.post("/entry/"+en.ID+"/respond", url.Values{"csrf": {h.csrf(page)}, "as": {"retract"}, "sure": {"1"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("retract: %s", resp.Status)
	}
	_, body := h.get(resp.Header.Get("Location"))
	if !strings.Contains(body, "before it was sent:") || !strings.Contains(body, "never its words") || strings.Contains(body, "Words said in anger") {
		t.Errorf("after retracting an entry not sent:\n%s", body)
	}
	// What goes next is the retraction: "it" would read as the entry
	// just said not to have been sent.
	if !strings.Contains(body, "The retraction will be sent as soon as the relay can be reached") {
		t.Errorf("after retracting an entry not sent, what is sent is not named:\n%s", body)
	}
}

// The box said the entry had not been sent, and the page's own watcher
// (or a sync elsewhere) sent it while the person decided: the result says
// so, instead of only "Retracted it".
func TestRetractSentWhileDeciding(t *testing.T) {
	t.Parallel()
	relay, h, en, page := entryNotSent(t)
	if !strings.Contains(page, `name="said" value="not-sent"`) {
		t.Fatalf("the retract form does not carry what its box said:\n%s", page)
	}
	// Then the relay is back and the entry goes out.
	relay.Start()
	if _, err := h.j.Sync(clienttest.Context(t)); err != nil {
		t.Fatal(err)
	}
	resp, _ := h.post("/entry/"+en.ID+"/respond", url.Values{"csrf": {h.csrf(page)}, "as": {"retract"}, "sure": {"1"}, "said": {"not-sent"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("retract: %s", resp.Status)
	}
	_, body := h.get(resp.Header.Get("Location"))
	if !strings.Contains(body, "It was sent while you were deciding") || strings.Contains(body, "before it was sent") {
		t.Errorf("after retracting an entry sent while deciding:\n%s", body)
	}
}

// entryNotSent starts the UI on a journal whose relay is down, writes an
// entry there (so nothing can send it) and returns the relay, the harness,
// the entry and its page.
func entryNotSent(t *testing.T) (*servertest.Server, *harness, client.Entry, string) {
	t.Helper()
	relay := servertest.NewServer(t)
	a := clienttest.NewAccount(t, "alex")
	j, err := a.CreateJournal(clienttest.Context(t), relay.URL(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	relay.Stop()
	h := start(t, a, j, nil)
	h.login()
	h.unlock()
	en, err := h.j.Write(client.Payload{Kind: client.KindEntry, Text: "Words said in anger."})
	if err != nil {
		t.Fatal(err)
	}
	_, page := h.get("/entry/" + en.ID)
	return relay, h, en, page
}
