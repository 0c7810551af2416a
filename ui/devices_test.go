package ui_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/client/clienttest"
	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
	"github.com/kintsugi-journal/kintsugi/ui"
)

// lockedBuffer is a log destination requests may write to concurrently.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var linkCodeRe = regexp.MustCompile(protocol.LinkPrefix + `[0-9A-Za-z_-]{20,}`)

// deviceNamed returns a's device named name.
func deviceNamed(t *testing.T, a *client.Account, name string) client.Device {
	t.Helper()
	devs, err := a.Devices()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("no device %q in %+v", name, devs)
	return client.Device{}
}

func TestDevices(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	alex, sam := clienttest.NewAccount(t, "Alex"), clienttest.NewAccount(t, "Sam")
	aj, _, _ := clienttest.Pair(t, relay.URL(), alex, sam)
	clienttest.Sync(t, aj)
	var logs lockedBuffer
	h := start(t, alex, aj, func(c *ui.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	h.login()
	h.unlock()

	_, body := h.get("/devices")
	if !strings.Contains(body, "Alex-device") || !strings.Contains(body, "(this device)") || strings.Contains(body, `name="confirm"`) {
		t.Fatalf("the devices page:\n%s", body)
	}
	// This device has no Remove button.
	if strings.Contains(body, `action="/devices/revoke"`) {
		t.Errorf("the devices page offers to remove the device in use:\n%s", body)
	}
	csrf := h.csrf(body)

	// A form without its token does nothing.
	if resp, _ := h.post("/devices/link", url.Values{"name": {"laptop"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("link without the form token: %s", resp.Status)
	}

	// Linking shows the code once, with the command line's warning, and
	// nothing keeps it: not the cache, not the address, not the log.
	resp, body := h.post("/devices/link", url.Values{"csrf": {csrf}, "name": {"laptop"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("link: %s\n%s", resp.Status, body)
	}
	code := linkCodeRe.FindString(body)
	if code == "" {
		t.Fatalf("no link code on the page:\n%s", body)
	}
	if !strings.Contains(body, "This code sets up a device that can read and write everything as you. Keep it to yourself; it works once, until") {
		t.Errorf("the code comes without the warning:\n%s", body)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("the code's page has Cache-Control %q, want no-store", cc)
	}
	if _, again := h.get("/devices"); strings.Contains(again, code) {
		t.Errorf("the devices page shows the code again")
	}
	if strings.Contains(logs.String(), code) || strings.Contains(logs.String(), protocol.LinkPrefix) {
		t.Errorf("the log holds the link code:\n%s", logs.String())
	}
	laptop, err := client.JoinLink(clienttest.Context(t), client.Home{Dir: filepath.Join(t.TempDir(), "laptop")}, code, []byte(clienttest.Passphrase), crypto.TestingKDF)
	if err != nil {
		t.Fatalf("join with the page's code: %v", err)
	}
	id := deviceNamed(t, laptop, "laptop").ID
	_, body = h.get("/devices")
	if !strings.Contains(body, "laptop") || !strings.Contains(body, `name="device" value="`+id+`"`) {
		t.Fatalf("the linked laptop is not listed with a Remove button:\n%s", body)
	}

	// Removing asks first, in the command line's words, and changes
	// nothing until confirmed.
	resp, body = h.post("/devices/revoke", url.Values{"csrf": {csrf}, "device": {id}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `Remove &#34;laptop&#34; from every journal? It cannot be added back; link it again to use it.`) || !strings.Contains(body, `name="confirm" value="yes"`) {
		t.Fatalf("remove did not ask first: %s\n%s", resp.Status, body)
	}
	if d := deviceNamed(t, alex, "laptop"); d.Removed != nil {
		t.Fatal("the laptop was removed before the confirmation")
	}
	resp, body = h.post("/devices/revoke", url.Values{"csrf": {csrf}, "device": {id}, "confirm": {"yes"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirmed remove: %s\n%s", resp.Status, body)
	}
	if d := deviceNamed(t, alex, "laptop"); d.Removed == nil {
		t.Fatal("the laptop is not removed after the confirmation")
	}
	_, body = h.get(resp.Header.Get("Location"))
	if !strings.Contains(body, "Removed laptop ("+id+") from 1 journal. The relay no longer lets it in") || !strings.Contains(body, "(removed ") {
		t.Errorf("the devices page after removing:\n%s", body)
	}

	// The device in use cannot be removed, even by a form made up for it;
	// the page says so kindly.
	self := deviceNamed(t, alex, "Alex-device").ID
	for _, confirm := range []string{"", "yes"} {
		resp, body = h.post("/devices/revoke", url.Values{"csrf": {csrf}, "device": {self}, "confirm": {confirm}})
		if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "that is the device you are using, so it stays") || !strings.Contains(body, "another of your devices") {
			t.Errorf("removing this device (confirm %q): %s\n%s", confirm, resp.Status, body)
		}
	}
	if d := deviceNamed(t, alex, "Alex-device"); d.Removed != nil {
		t.Error("this device was removed")
	}
}

// What a relay did to the record a person's devices share shows on the
// status page under "Your devices", as `kintsugi status` says it, and
// "Mark all read" marks it read with the rest, as `--ack all` does.
func TestStatusYourDevices(t *testing.T) {
	t.Parallel()
	relay, liar := servertest.NewLyingServer(t)
	alex, sam := clienttest.NewAccount(t, "Alex"), clienttest.NewAccount(t, "Sam")
	aj, _, _ := clienttest.Pair(t, relay.URL(), alex, sam)
	clienttest.Sync(t, aj)
	ctx := clienttest.Context(t)
	code, _, err := alex.LinkDevice(ctx, "laptop", 0)
	if err != nil {
		t.Fatal(err)
	}
	laptop, err := client.JoinLink(ctx, client.Home{Dir: filepath.Join(t.TempDir(), "laptop")}, code, []byte(clienttest.Passphrase), crypto.TestingKDF)
	if err != nil {
		t.Fatal(err)
	}
	lj, err := laptop.Current("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lj.Close() })
	if _, err := alex.SyncAccount(ctx); err != nil {
		t.Fatal(err)
	}
	h := start(t, laptop, lj, func(c *ui.Config) {
		c.Sentence = func(n client.Notice) string { return "notice " + string(n.Kind) }
	})
	h.login()
	h.unlock()
	if _, body := h.get("/status"); strings.Contains(body, "Your devices") {
		t.Fatalf("status speaks of the shared record with nothing to say:\n%s", body)
	}

	own, err := laptop.AccountJournalID()
	if err != nil {
		t.Fatal(err)
	}
	liar.Serve(servertest.In(own, servertest.Twice(func(server.StoredBlob) bool { return true })))
	if _, err := laptop.SyncAccount(ctx); err != nil {
		t.Fatal(err)
	}
	_, body := h.get("/status")
	if !strings.Contains(body, `<h2 id="h-own">Your devices</h2>`) || !strings.Contains(body, "<li>notice relay-replayed.</li>") {
		t.Fatalf("status does not show the shared record's notice:\n%s", body)
	}
	resp, _ := h.post("/status/read", url.Values{"csrf": {h.csrf(body)}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("mark all read: %s", resp.Status)
	}
	_, body = h.get(resp.Header.Get("Location"))
	if !strings.Contains(body, "notice read.") && !strings.Contains(body, "notices read.") || strings.Contains(body, "relay-replayed") {
		t.Errorf("status after marking all read:\n%s", body)
	}
	st, err := laptop.AccountStatus()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range st.Notices {
		if !n.Acknowledged && !n.Holds {
			t.Errorf("still unread in the shared record: %+v", n)
		}
	}
}
