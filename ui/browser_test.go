package ui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/client/clienttest"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// The pages in a real browser: headless Chromium, driven with chromedp,
// against two partners who each run their own ui server, and a real relay
// on 127.0.0.1. Alex unlocks with the passphrase and writes a feeling
// entry, which appears in Sam's open page without a reload; Sam answers
// Alex's hard question, which appears in Alex's open page; Sam reads the
// feelings chart; both answer a question for both, and neither reads the
// other's answer before answering; Alex's commitment check-in shows on
// the strip in both pages.
//
// Without Chromium the test is skipped, saying so, except in CI
// (CI=true), where .ci/run installs it and a skip would hide a failure.
//
// KINTSUGI_UI_SCREENSHOTS=DIR also saves a screenshot of the timeline as
// DIR/ui-timeline.png (DIR relative to the repository's root), for the
// README: `KINTSUGI_UI_SCREENSHOTS=docs go test ./ui -run Browser`.

// chromium returns the path of a Chromium or Chrome, or skips the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no Chromium found, and CI=true: .ci/run installs Debian's chromium; install it (apt-get install chromium)")
	}
	t.Skip("no Chromium found (chromium, chromium-browser, google-chrome): the browser tests are skipped. `apt-get install chromium` runs them")
	return ""
}

// browser starts a headless browser and returns its first tab's context.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.DisableGPU,
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to run as root otherwise (CI containers)
	}
	alloc, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start the browser: %v", err)
	}
	return ctx
}

// timed bounds one step of the test: a failsafe, not a measurement.
func timed(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 60*time.Second)
}

func TestBrowserLiveEntry(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	alex, sam := clienttest.NewAccount(t, "Alex"), clienttest.NewAccount(t, "Sam")
	aj, sj, _ := clienttest.Pair(t, relay.URL(), alex, sam)
	clienttest.Sync(t, aj)
	// A little history, so the timeline reads like one.
	seven := 7
	earlier := []client.Payload{
		{Kind: client.KindEntry, Text: "We talked on the walk today. It was hard, and I am glad we did.", Feelings: []string{"hope", "fear"}, Intensity: &seven, Tags: []string{"sunday-talk"}},
		{Kind: client.KindQuestion, Text: "When you were late on Thursdays, where were you?"},
	}
	for _, p := range earlier {
		if _, err := aj.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	clienttest.Sync(t, aj)
	if _, err := sj.Write(client.Payload{Kind: client.KindEntry, Text: "I could not sleep. I keep going over it.", Feelings: []string{"grief"}, ListenOnly: true}); err != nil {
		t.Fatal(err)
	}
	// Months of feelings named, for the chart: grief easing, hope growing.
	now := time.Now()
	samDays := []string{"", "A calmer week. We laughed once, and it surprised me.", "The counsellor asked what I need. I did not know.", "I read the old messages again. I wish I had not.", "Some days I cannot look at you.", "I found out today. I do not know what to do with this."}
	alexDays := []string{"", "You let me hold your hand on the walk.", "I told you about my day without being asked.", "Therapy on Tuesday. I want to keep going.", "I keep saying sorry. I know it is not enough.", "I am ashamed. I will answer anything you ask."}
	for m := 5; m >= 1; m-- {
		when := now.AddDate(0, -m, 0)
		grief, hope := 4+m, 7-m
		for _, w := range []struct {
			j *client.Journal
			p client.Payload
		}{
			{sj, client.Payload{Kind: client.KindEntry, Text: samDays[m], Feelings: []string{"grief", "anger"}, Intensity: &grief, Created: when}},
			{aj, client.Payload{Kind: client.KindEntry, Text: alexDays[m], Feelings: []string{"guilt", "hope"}, Intensity: &hope, Created: when.Add(time.Hour)}},
		} {
			if _, err := w.j.Write(w.p); err != nil {
				t.Fatal(err)
			}
		}
	}
	clienttest.Sync(t, sj)
	clienttest.Sync(t, aj)

	ha := start(t, alex, aj, nil)
	hs := start(t, sam, sj, nil)
	hs.keys.setAgent(true) // Sam unlocked with `kintsugi unlock`; Alex types the passphrase

	tab := browser(t)
	samTab, cancel := chromedp.NewContext(tab)
	defer cancel()

	// Sam opens the page: the link unlocks through the agent, and the
	// timeline is there.
	ctx, stop := timed(samTab)
	defer stop()
	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(1000, 900),
		chromedp.Navigate(hs.srv.URL()),
		chromedp.WaitVisible("#timeline"),
	); err != nil {
		t.Fatalf("Sam's timeline: %v", err)
	}
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); strings.Contains(loc, "token") {
		t.Errorf("the token stays in the address bar: %s", loc)
	}
	// A mark that a reload would wipe: the new entry must arrive without one.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.kintsugiTestMark = true`)); err != nil {
		t.Fatal(err)
	}

	// Alex unlocks with the passphrase and writes a feeling entry.
	const words = "Reading what you wrote made me cry. I am here, and I am listening."
	ctx2, stop2 := timed(tab)
	defer stop2()
	steps := []struct {
		what string
		do   chromedp.Action[chromedp.Void]
	}{
		{"open the link", chromedp.Navigate(ha.srv.URL())},
		{"see the unlock page", chromedp.WaitVisible("#u-pass")},
		{"type the passphrase", chromedp.SendKeys("#u-pass", clienttest.Passphrase)},
		{"unlock", goes(chromedp.Click(`form.unlock button[type="submit"]`), "#timeline")},
		{"go to the write page", goes(chromedp.Click(`nav a[href="/write"]`), "#w-text")},
		{"type", chromedp.SendKeys("#w-text", words)},
		{"pick grief", chromedp.Click(`input[name="feeling"][value="grief"]`)},
		{"pick hope", chromedp.Click(`input[name="feeling"][value="hope"]`)},
		{"say how strong", chromedp.Click(`input[name="rate"]`)},
		{"move the slider", chromedp.SetValue("#w-intensity", "6")},
		{"tag it", chromedp.SendKeys("#w-tags", "evening")},
		{"save", goes(chromedp.Click(`form.write button[type="submit"]`), ".notice")},
	}
	for _, s := range steps {
		step, cancel := context.WithTimeout(ctx2, 20*time.Second)
		err := chromedp.Do(step, s.do)
		cancel()
		if err != nil {
			loc, _ := chromedp.Run(ctx2, chromedp.Location())
			html, _ := chromedp.Run(ctx2, chromedp.OuterHTML("main"))
			t.Fatalf("Alex: %s: %v (at %s)\n%s", s.what, err, loc, html)
		}
	}
	notice, err := chromedp.Run(ctx2, chromedp.Text(".notice"))
	if err != nil || !strings.Contains(notice, "Saved your entry") {
		t.Fatalf("Alex's notice: %q, %v", notice, err)
	}

	// It appears in Sam's open page, without a reload.
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("timeline").textContent.includes(`+jsString(words)+`)`, chromedp.WithPollingTimeout(45*time.Second))); err != nil {
		t.Fatalf("Alex's entry did not appear in Sam's page: %v", err)
	}
	kept, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.kintsugiTestMark === true`))
	if err != nil || !kept {
		t.Errorf("Sam's page reloaded to show the entry (mark kept: %v, %v)", kept, err)
	}
	first, err := chromedp.Run(ctx, chromedp.Text("#timeline article"))
	if err != nil || !strings.Contains(first, words) || !strings.Contains(first, "grief, hope (6/10)") {
		t.Errorf("the newest entry on Sam's page: %q, %v", first, err)
	}
	if dir := os.Getenv("KINTSUGI_UI_SCREENSHOTS"); dir != "" {
		screenshot(t, ctx, dir, "ui-timeline.png")
	}

	// Sam answers Alex's hard question from the questions page, and the
	// answer appears in Alex's open timeline.
	const answer = "I was at my sister's. I should have told you, and I am sorry I did not."
	ctx3, stop3 := timed(samTab)
	defer stop3()
	for _, s := range []struct {
		what string
		do   chromedp.Action[chromedp.Void]
	}{
		{"go to the questions", goes(chromedp.Click(`nav a[href="/questions"]`), `section[aria-labelledby="h-for-you"] .more a`)},
		{"open it", goes(chromedp.Click(`section[aria-labelledby="h-for-you"] .more a`), "#r-answer")},
		{"type the answer", chromedp.SendKeys("#r-answer", answer)},
		{"save it", goes(chromedp.Submit("#r-answer"), ".notice")},
	} {
		if err := chromedp.Do(ctx3, s.do); err != nil {
			html, _ := chromedp.Run(ctx3, chromedp.OuterHTML("main"))
			t.Fatalf("Sam: %s: %v\n%s", s.what, err, html)
		}
	}
	if notice, err := chromedp.Run(ctx3, chromedp.Text(".notice")); err != nil || !strings.Contains(notice, "Saved your answer") {
		t.Errorf("Sam's notice: %q, %v", notice, err)
	}
	ctx4, stop4 := timed(tab)
	defer stop4()
	if _, err := chromedp.Run(ctx4, chromedp.Poll[bool](`document.getElementById("timeline").textContent.includes(`+jsString(answer)+`)`, chromedp.WithPollingTimeout(45*time.Second))); err != nil {
		t.Fatalf("Sam's answer did not appear in Alex's page: %v", err)
	}
	clienttest.Sync(t, aj)
	r, err := aj.Reader()
	if err != nil {
		t.Fatal(err)
	}
	if qs := r.Questions(); qs.Mine.Answered != 1 || qs.Mine.Open != 0 {
		t.Errorf("Alex's questions after Sam answered: %+v", qs.Mine)
	}

	// The feelings chart over months, in Sam's page.
	if err := chromedp.Do(ctx3, goes(chromedp.Click(`nav a[href="/feelings"]`), "table.chart")); err != nil {
		t.Fatalf("Sam's feelings chart: %v", err)
	}
	rows, err := chromedp.Run(ctx3, chromedp.Evaluate[int](`document.querySelectorAll("table.chart tbody tr").length`))
	if err != nil || rows != 6 { // Alex: fear, grief, guilt, hope; Sam: anger, grief
		t.Errorf("the chart has %d rows, want 6 (%v)", rows, err)
	}
	if dir := os.Getenv("KINTSUGI_UI_SCREENSHOTS"); dir != "" {
		screenshot(t, ctx3, dir, "ui-feelings.png")
	}

	// A question for both: Alex asks it; Sam answers first; Alex cannot
	// read Sam's answer until Alex has answered too; then both read both.
	const both = "What is one thing you wish I understood?"
	const samSays, alexSays = "How small I felt, and for how long.", "That I am still here because I want to be."
	actx, stopA := timed(tab)
	defer stopA()
	sctx, stopS := timed(samTab)
	defer stopS()
	if err := chromedp.Do(actx,
		goes(chromedp.Click(`nav a[href="/questions"]`), "#a-together"),
		chromedp.SendKeys("#a-together", both),
		goes(chromedp.Submit("#a-together"), ".notice"),
	); err != nil {
		t.Fatalf("Alex asks a question for both: %v", err)
	}
	var id string
	for _, e := range mustEntries(t, aj) {
		if e.Kind == client.KindTogether {
			id = e.ID
		}
	}
	if id == "" {
		t.Fatal("Alex's question for both was not saved")
	}
	// reloadUntil reloads the entry's page in a tab until it contains
	// want (a failsafe bound, not a measurement).
	reloadUntil := func(ctx context.Context, h *harness, who, want string) {
		t.Helper()
		for i := range 100 {
			step, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := chromedp.Do(step, chromedp.Navigate(h.base+"/entry/"+id))
			cancel()
			if err != nil {
				t.Logf("%s opens the question (try %d): %v; trying again", who, i, err)
				continue
			}
			if html, _ := chromedp.Run(ctx, chromedp.OuterHTML("main")); strings.Contains(html, want) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		html, _ := chromedp.Run(ctx, chromedp.OuterHTML("main"))
		t.Fatalf("%s's page never shows %q:\n%s", who, want, html)
	}
	answerBoth := func(ctx context.Context, who, text string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.SendKeys("#r-together", text), goes(chromedp.Submit("#r-together"), ".notice")); err != nil {
			t.Fatalf("%s answers the question for both: %v", who, err)
		}
	}
	reloadUntil(sctx, hs, "Sam", `id="r-together"`)
	answerBoth(sctx, "Sam", samSays)
	reloadUntil(actx, ha, "Alex", "waiting-for-you")
	if html, _ := chromedp.Run(actx, chromedp.OuterHTML("body")); strings.Contains(html, samSays) {
		t.Fatal("Alex's page shows Sam's answer before Alex answered")
	}
	answerBoth(actx, "Alex", alexSays)
	reloadUntil(actx, ha, "Alex", samSays)
	reloadUntil(sctx, hs, "Sam", alexSays)

	// A commitment: Alex makes one and checks in; the check-in shows on
	// the strip, in Alex's page and then in Sam's.
	const promise = "I will tell you my plans each evening."
	if err := chromedp.Do(actx,
		goes(chromedp.Click(`nav a[href="/commitments"]`), "#m-text"),
		chromedp.SendKeys("#m-text", promise),
		goes(chromedp.Submit("#m-text"), ".notice"),
		goes(chromedp.Click(`form.checkin button[value="kept"]`), ".strip .kept"),
	); err != nil {
		html, _ := chromedp.Run(actx, chromedp.OuterHTML("main"))
		t.Fatalf("Alex commits and checks in: %v\n%s", err, html)
	}
	for i := 0; ; i++ {
		if err := chromedp.Do(sctx, chromedp.Navigate(hs.base+"/commitments"), chromedp.WaitVisible("main")); err != nil {
			t.Fatalf("Sam's commitments: %v", err)
		}
		kept, err := chromedp.Run(sctx, chromedp.Evaluate[int](`document.querySelectorAll(".strip .kept").length`))
		if err == nil && kept == 1 {
			break
		}
		if i == 100 {
			t.Fatalf("Alex's check-in never shows on Sam's strip (%d, %v)", kept, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// No plaintext in either home or the relay's data.
	relay.Stop()
	needles := []string{words, answer, samSays, alexSays, both, promise, earlier[0].Text, earlier[1].Text, clienttest.Passphrase}
	for _, dir := range []string{relay.DataDir(), alex.Home.Dir, sam.Home.Dir} {
		clienttest.AssertNoPlaintext(t, dir, needles)
	}
}

// screenshot saves what the tab shows (its viewport) as dir/name, dir
// relative to the repository.
func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join("..", dir) // tests run in ui/
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", filepath.Join(dir, name))
}

// mustEntries returns j's entries.
func mustEntries(t *testing.T, j *client.Journal) []client.Entry {
	t.Helper()
	list, err := j.Entries()
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// goes runs a, a click or a submit that loads another page, and waits
// until the new page has loaded and shows sel. The old page is marked
// first, so that neither its own sel nor its node ids are mistaken for
// the new page's.
func goes(a chromedp.Action[chromedp.Void], sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			mark := chromedp.Evaluate[bool](`window.kintsugiOldPage = true`)
			for {
				if _, err := mark(ctx, t); err == nil {
					return nil
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("marking the page: %w", ctx.Err())
				case <-time.After(50 * time.Millisecond):
				}
			}
		}),
		a,
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			// Evaluating while the page changes fails ("target navigated"):
			// that only means not yet.
			check := chromedp.Evaluate[bool](`!window.kintsugiOldPage && document.readyState === "complete" && document.querySelector(` + jsString(sel) + `) !== null`)
			for {
				if ok, err := check(ctx, t); err == nil && ok {
					return nil
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("waiting for %s on the next page: %w", sel, ctx.Err())
				case <-time.After(50 * time.Millisecond):
				}
			}
		}),
	)
}

// jsString quotes s for JavaScript.
func jsString(s string) string { b, _ := json.Marshal(s); return string(b) }
