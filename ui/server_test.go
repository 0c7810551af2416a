package ui_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/client/clienttest"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
	"github.com/kintsugi-journal/kintsugi/ui"
)

// keys is a ui.Keys over an account's home, with an unlock agent that
// tests can turn on.
type keys struct {
	home   client.Home
	mu     sync.Mutex
	agent  bool // an unlocked session holds the account
	locked int  // LockAgent calls
}

func (k *keys) Agent(context.Context) *client.Account {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.agent {
		return nil
	}
	a, err := client.Unlock(k.home, []byte(clienttest.Passphrase))
	if err != nil {
		return nil
	}
	return a
}

func (k *keys) Passphrase(p []byte) (*client.Account, error) { return client.Unlock(k.home, p) }

func (k *keys) setAgent(on bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.agent = on
}

func (k *keys) lockCount() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.locked
}

func (k *keys) LockAgent(context.Context) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.agent = false
	k.locked++
}

// clock is a test clock for the idle lock. It starts at the real time, so
// that what the pages date (commitments, exports) agrees with what the
// client stamps; a test about one date sets it (set).
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// set makes the clock say t, for a test whose page depends on the date.
func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// harness is a ui server for one account's journal, and a browser-like
// HTTP client (with a cookie jar, not following redirects).
type harness struct {
	t     testing.TB
	srv   *ui.Server
	base  string // http://127.0.0.1:PORT
	http  *http.Client
	keys  *keys
	clock *clock
	j     *client.Journal // the test's own handle on the same journal
}

// journalFor returns a journal of its own for a, on a relay of its own.
func journalFor(t testing.TB, name string) (*client.Account, *client.Journal) {
	t.Helper()
	relay := servertest.NewServer(t)
	a := clienttest.NewAccount(t, name)
	j, err := a.CreateJournal(clienttest.Context(t), relay.URL(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return a, j
}

// start serves a's journal (j is the test's handle on it).
func start(t testing.TB, a *client.Account, j *client.Journal, mod func(*ui.Config)) *harness {
	t.Helper()
	h := &harness{t: t, keys: &keys{home: a.Home}, clock: &clock{now: time.Now()}, j: j}
	cfg := ui.Config{
		Keys:     h.keys,
		Open:     func(a *client.Account) (*client.Journal, error) { return a.Current("") },
		Feelings: []string{"grief", "hope"},
		Kinds:    []string{client.KindEntry, client.KindQuestion},
		Now:      h.clock.Now,
	}
	if mod != nil {
		mod(&cfg)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.srv, err = ui.New(cfg, ln)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	h.base = "http://" + ln.Addr().String()
	jar, _ := cookiejar.New(nil)
	h.http = &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return h
}

// newHarness is start for a fresh account and journal.
func newHarness(t *testing.T) *harness {
	a, j := journalFor(t, "alex")
	return start(t, a, j, nil)
}

// token returns the one-time token of the server's URL.
func (h *harness) token() string {
	u, err := url.Parse(h.srv.URL())
	if err != nil {
		h.t.Fatal(err)
	}
	return u.Query().Get("token")
}

// do sends a request and returns the response with its body read.
func (h *harness) do(req *http.Request) (*http.Response, string) {
	h.t.Helper()
	resp, err := h.http.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp, string(b)
}

func (h *harness) get(path string) (*http.Response, string) {
	h.t.Helper()
	req, err := http.NewRequest("GET", h.base+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.do(req)
}

func (h *harness) post(path string, form url.Values) (*http.Response, string) {
	h.t.Helper()
	req, err := http.NewRequest("POST", h.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return h.do(req)
}

// login uses the one-time token.
func (h *harness) login() {
	h.t.Helper()
	resp, _ := h.get("/?token=" + h.token())
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		h.t.Fatalf("the token gave %s to %q, want 303 to /", resp.Status, resp.Header.Get("Location"))
	}
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf returns the form token of a page.
func (h *harness) csrf(body string) string {
	h.t.Helper()
	m := csrfRe.FindStringSubmatch(body)
	if m == nil {
		h.t.Fatalf("no csrf field in the page:\n%s", body)
	}
	return m[1]
}

// unlock unlocks with the passphrase through the unlock page.
func (h *harness) unlock() {
	h.t.Helper()
	_, body := h.get("/unlock")
	resp, body := h.post("/unlock", url.Values{"csrf": {h.csrf(body)}, "passphrase": {clienttest.Passphrase}})
	if resp.StatusCode != http.StatusSeeOther {
		h.t.Fatalf("unlock: %s\n%s", resp.Status, body)
	}
}

func TestTokenBecomesCookieOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	if !strings.HasPrefix(h.srv.URL(), h.base+"/?token=") || len(h.token()) != 43 {
		t.Fatalf("URL %q: want %s/?token= and 32 bytes of base64url", h.srv.URL(), h.base)
	}
	resp, _ := h.get("/?token=" + h.token())
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("token: %s to %q, want 303 to / (no token in the URL)", resp.Status, resp.Header.Get("Location"))
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies: %v", cookies)
	}
	c := cookies[0]
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Value == h.token() {
		t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/ and a value that is not the token", c)
	}
	// The cookie opens the pages (locked: the unlock page).
	if resp, _ := h.get("/"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/unlock" {
		t.Errorf("/ with the cookie: %s to %q, want the unlock page", resp.Status, resp.Header.Get("Location"))
	}
	if resp, body := h.get("/unlock"); resp.StatusCode != http.StatusOK || !strings.Contains(body, `type="password"`) {
		t.Errorf("/unlock with the cookie: %s", resp.Status)
	}
	// The token works once, even in the same browser.
	resp, body := h.get("/?token=" + h.token())
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "used already") {
		t.Errorf("the token again: %s\n%s", resp.Status, body)
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.login()
	_, page := h.get("/unlock")
	csrf := h.csrf(page)

	stranger := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	send := func(c *http.Client, method, path string, mod func(*http.Request)) (int, string) {
		t.Helper()
		var body io.Reader
		if method == "POST" {
			body = strings.NewReader(url.Values{"csrf": {csrf}, "text": {"x"}}.Encode())
		}
		req, _ := http.NewRequest(method, h.base+path, body)
		if method == "POST" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if mod != nil {
			mod(req)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		name   string
		client *http.Client
		method string
		path   string
		mod    func(*http.Request)
		status int
		says   string
	}{
		{"no cookie", stranger, "GET", "/", nil, 403, "needs the link"},
		{"no cookie, an entry", stranger, "GET", "/entry/00", nil, 403, "needs the link"},
		{"no cookie, events", stranger, "GET", "/events", nil, 403, "needs the link"},
		{"wrong token", stranger, "GET", "/?token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", nil, 403, "not the one"},
		{"wrong cookie", stranger, "GET", "/", func(r *http.Request) {
			r.AddCookie(&http.Cookie{Name: "kintsugi_" + strings.Split(h.base, ":")[2], Value: "guess"})
		}, 403, "needs the link"},
		{"rebinding host", h.http, "GET", "/", func(r *http.Request) { r.Host = "evil.example:" + strings.Split(h.base, ":")[2] }, 421, ""},
		{"another port", h.http, "GET", "/", func(r *http.Request) { r.Host = "127.0.0.1:1" }, 421, ""},
		{"foreign origin", h.http, "GET", "/unlock", func(r *http.Request) { r.Header.Set("Origin", "http://evil.example") }, 403, "another web site"},
		{"foreign origin, post", h.http, "POST", "/lock", func(r *http.Request) { r.Header.Set("Origin", "http://evil.example") }, 403, "another web site"},
		{"null origin", h.http, "POST", "/lock", func(r *http.Request) { r.Header.Set("Origin", "null") }, 403, "another web site"},
		{"null origin, cross-site", h.http, "POST", "/lock", func(r *http.Request) {
			r.Header.Set("Origin", "null")
			r.Header.Set("Sec-Fetch-Site", "cross-site")
		}, 403, "another web site"},
		{"post without csrf", h.http, "POST", "/write", func(r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader("text=hello"))
			r.ContentLength = int64(len("text=hello"))
		}, 403, "not sent from a kintsugi page"},
		{"post with a wrong csrf", h.http, "POST", "/lock", func(r *http.Request) {
			b := "csrf=" + strings.Repeat("A", 43)
			r.Body = io.NopCloser(strings.NewReader(b))
			r.ContentLength = int64(len(b))
		}, 403, "not sent from a kintsugi page"},
		{"unlock without csrf", h.http, "POST", "/unlock", func(r *http.Request) {
			b := "passphrase=" + url.QueryEscape(clienttest.Passphrase)
			r.Body = io.NopCloser(strings.NewReader(b))
			r.ContentLength = int64(len(b))
		}, 403, "not sent from a kintsugi page"},
	} {
		status, body := send(tc.client, tc.method, tc.path, tc.mod)
		if status != tc.status || !strings.Contains(body, tc.says) {
			t.Errorf("%s: %d, want %d saying %q:\n%s", tc.name, status, tc.status, tc.says, body)
		}
		if strings.Contains(body, "kintsugi: ") && status == 403 && !strings.Contains(body, `class="hint"`) {
			t.Errorf("%s: the refusal gives no hint:\n%s", tc.name, body)
		}
	}
	// None of that unlocked anything or changed anything: the person's
	// own requests still work, with the same-origin Origin a browser sends.
	status, _ := send(h.http, "GET", "/unlock", func(r *http.Request) { r.Header.Set("Origin", h.base) })
	if status != http.StatusOK {
		t.Errorf("same origin: %d", status)
	}
	// A browser posting the page's own form under no-referrer sends
	// "Origin: null" and says it is same-origin.
	status, _ = send(h.http, "GET", "/unlock", func(r *http.Request) {
		r.Header.Set("Origin", "null")
		r.Header.Set("Sec-Fetch-Site", "same-origin")
	})
	if status != http.StatusOK {
		t.Errorf("null origin, same-origin: %d", status)
	}
	// localhost:PORT names the server too (a browser keeps its cookies
	// apart from 127.0.0.1's; the test hands the cookie over).
	base, _ := url.Parse(h.base)
	status, body := send(stranger, "GET", "/unlock", func(r *http.Request) {
		r.Host = "localhost:" + base.Port()
		for _, c := range h.http.Jar.Cookies(base) {
			r.AddCookie(c)
		}
	})
	if status != http.StatusOK {
		t.Errorf("localhost:PORT: %d %s", status, body)
	}
}

func TestHeaders(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	check := func(what string, resp *http.Response) {
		t.Helper()
		want := map[string]string{
			"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "no-referrer",
			"Cache-Control":           "no-store",
		}
		for k, v := range want {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("%s: %s is %q, want %q", what, k, got, v)
			}
		}
	}
	resp, _ := h.get("/")
	check("refused", resp)
	h.login()
	h.unlock()
	h.j.Write(client.Payload{Kind: client.KindEntry, Text: "a first page"})
	resp, body := h.get("/")
	if !strings.Contains(body, "a first page") {
		t.Fatalf("timeline: %s\n%s", resp.Status, body)
	}
	check("timeline", resp)
	resp, _ = h.get("/write")
	check("write", resp)
	resp, body = h.get("/static/live.js")
	check("script", resp)
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "javascript") || !strings.Contains(body, "EventSource") {
		t.Errorf("live.js: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	// No inline script or style anywhere, and nothing from elsewhere: the
	// policy would block it.
	for _, bad := range []string{"<script>", "style=", "<style", "http://", "https://", " on"} {
		_, body := h.get("/write")
		if bad == " on" {
			if regexp.MustCompile(` on[a-z]+=`).MatchString(body) {
				t.Errorf("the write page has an inline event handler")
			}
			continue
		}
		if strings.Contains(body, bad) {
			t.Errorf("the write page contains %q", bad)
		}
	}
}

func TestCheckListen(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"127.0.0.1:0", "127.0.0.1:8080", "127.1.2.3:80", "[::1]:0", "localhost:0", "LOCALHOST:1"} {
		if err := ui.CheckListen(ok); err != nil {
			t.Errorf("CheckListen(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{":8080", "0.0.0.0:8080", "[::]:0", "192.168.1.2:80", "example.com:80"} {
		if err := ui.CheckListen(bad); !errors.Is(err, ui.ErrNotLoopback) {
			t.Errorf("CheckListen(%q) = %v, want ErrNotLoopback", bad, err)
		}
	}
	if err := ui.CheckListen("127.0.0.1"); err == nil || errors.Is(err, ui.ErrNotLoopback) {
		t.Errorf("CheckListen without a port = %v", err)
	}
	// New refuses a listener on another address.
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Skip("cannot listen on 0.0.0.0 here:", err)
	}
	defer ln.Close()
	if _, err := ui.New(ui.Config{Keys: &keys{}, Open: func(*client.Account) (*client.Journal, error) { return nil, nil }}, ln); !errors.Is(err, ui.ErrNotLoopback) {
		t.Errorf("New on 0.0.0.0 = %v, want ErrNotLoopback", err)
	}
}
