package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// relayProc is a "serve" running in the background.
type relayProc struct {
	addr    string // host:port of the relay listener
	scheme  string // http or https
	metrics string // host:port of the metrics listener, if any
	stop    func() error
}

// startServe runs "serve" with args (plus --listen 127.0.0.1:0 and a
// fresh --data unless given) and waits until it listens.
func startServe(t *testing.T, args ...string) *relayProc {
	t.Helper()
	if !containsFlag(args, "--listen") {
		args = append(args, "--listen", "127.0.0.1:0")
	}
	if !containsFlag(args, "--data") {
		args = append(args, "--data", filepath.Join(t.TempDir(), "data"))
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := newApp(pw, io.Discard).RunContext(ctx, append([]string{"kintsugi-relay", "serve", "--log-level", "debug"}, args...))
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	lines := bufio.NewScanner(pr)
	p := &relayProc{}
	for p.addr == "" || (containsFlag(args, "--metrics-listen") && p.metrics == "") {
		if !lines.Scan() {
			cancel()
			t.Fatalf("relay did not start: %v", <-done)
		}
		line := lines.Text()
		if rest, ok := strings.CutPrefix(line, "kintsugi-relay: listening on "); ok {
			u := strings.Fields(rest)[0]
			p.scheme, p.addr, _ = strings.Cut(u, "://")
		} else if rest, ok := strings.CutPrefix(line, "kintsugi-relay: metrics on http://"); ok {
			p.metrics = strings.TrimSuffix(rest, "/metrics")
		} else {
			t.Fatalf("unexpected output %q", line)
		}
	}
	go io.Copy(io.Discard, pr)
	stopped := false
	p.stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { p.stop() })
	return p
}

func containsFlag(args []string, flag string) bool {
	for _, a := range args {
		if a == flag || strings.HasPrefix(a, flag+"=") {
			return true
		}
	}
	return false
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key as
// PEM files and returns their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kintsugi test relay"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, pool
}

// With --tls-cert and --tls-key the relay speaks HTTPS and WSS itself: a
// device that trusts the certificate connects, authenticates and stores a
// blob; plain HTTP to the same port gets nowhere.
func TestTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	p := startServe(t, "--tls-cert", certFile, "--tls-key", keyFile)
	if p.scheme != "https" {
		t.Fatalf("relay announced %s://, want https://", p.scheme)
	}
	tlsConf := &tls.Config{RootCAs: pool}
	c := servertest.DialRawWith(t, &websocket.Dialer{TLSClientConfig: tlsConf}, "wss://"+p.addr+protocol.Path, nil)
	if err := c.Authenticate(servertest.NewKey(t)); err != nil {
		t.Fatal(err)
	}
	j := servertest.NewJournalID()
	servertest.MustOK(t, c.Create(j))
	ch := servertest.Chain{Journal: j, Author: c.Device}
	servertest.MustOK(t, c.Put(j, ch.Next("over tls")))

	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf}, Timeout: servertest.ReadTimeout}
	resp, err := hc.Get("https://" + p.addr + protocol.InfoPath)
	if err != nil {
		t.Fatal(err)
	}
	var info protocol.RelayInfo
	err = json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if err != nil || info.RelayID != c.Hello.RelayID || resp.ProtoMajor != 1 {
		t.Fatalf("info over TLS: %+v %v (HTTP/%d)", info, err, resp.ProtoMajor)
	}

	// A client that does not trust the certificate is refused by its own
	// TLS check; plain HTTP to the TLS port gets a 400.
	if _, _, err := (&websocket.Dialer{HandshakeTimeout: servertest.ReadTimeout}).Dial("wss://"+p.addr+protocol.Path, nil); err == nil {
		t.Fatal("a client that does not trust the certificate connected")
	}
	// So is the health probe, which says it is the certificate.
	if _, rep, rc := runCmd(context.Background(), "health", "https://"+p.addr); rc != exitFailure || !strings.Contains(rep, "does not trust its certificate") {
		t.Fatalf("health of a relay with an untrusted certificate: exit %d: %s", rc, rep)
	}
	plain := &http.Client{Timeout: servertest.ReadTimeout}
	if resp, err := plain.Get("http://" + p.addr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("plain HTTP to the TLS port: %s", resp.Status)
		}
	}
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
}

// A renewed certificate is picked up without a restart.
func TestTLSReload(t *testing.T) {
	certFile, keyFile, _ := selfSigned(t)
	r, err := newCertReloader(certFile, keyFile, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	first, _ := r.getCertificate(nil)
	cert2, key2, _ := selfSigned(t)
	for _, f := range [][2]string{{cert2, certFile}, {key2, keyFile}} {
		b, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r.checked = time.Time{} // as if certCheckInterval had passed
	second, _ := r.getCertificate(nil)
	if second == first || string(second.Certificate[0]) == string(first.Certificate[0]) {
		t.Fatal("the renewed certificate was not loaded")
	}
	// A half-written renewal keeps the current certificate.
	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.checked = time.Time{}
	if third, _ := r.getCertificate(nil); third != second {
		t.Fatal("a broken renewal replaced the working certificate")
	}
}

// --metrics-listen serves /metrics, /healthz and /readyz on a separate
// listener; the public listener does not serve /metrics.
func TestMetricsListener(t *testing.T) {
	p := startServe(t, "--metrics-listen", "127.0.0.1:0")
	c := servertest.Dial(t, "ws://"+p.addr+protocol.Path, servertest.NewKey(t))
	servertest.MustOK(t, c.Create(servertest.NewJournalID()))
	body, code := get(t, "http://"+p.metrics+"/metrics")
	if code != 200 || !strings.Contains(body, "\nkintsugi_relay_connections 1\n") || !strings.Contains(body, "kintsugi_relay_connections_total 1") {
		t.Fatalf("metrics: %d\n%s", code, body)
	}
	if _, code := get(t, "http://"+p.addr+"/metrics"); code != http.StatusNotFound {
		t.Fatalf("public /metrics: %d", code)
	}
	if body, code := get(t, "http://"+p.metrics+"/readyz"); code != 200 || body != "ready" {
		t.Fatalf("readyz: %d %q", code, body)
	}
}

func get(t *testing.T, url string) (string, int) {
	t.Helper()
	hc := &http.Client{Timeout: servertest.ReadTimeout}
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode
}

// Flags and environment variables reach the relay, as its info document
// shows; 0 turns a limit off.
func TestLimitFlags(t *testing.T) {
	t.Setenv("KINTSUGI_RELAY_MAX_CONNECTIONS", "3")
	t.Setenv("KINTSUGI_RELAY_JOURNAL_QUOTA", "7MiB")
	p := startServe(t, "--journal-quota", "5MiB", "--request-rate", "0", "--journal-put-rate", "2.5", "--journal-put-burst", "9",
		"--max-blob-size", "64KiB", "--max-connections-per-address", "0", "--max-unauthenticated-connections", "40", "--auth-timeout", "3s", "--allow-origin", "https://a.example")
	body, code := get(t, "http://"+p.addr+protocol.InfoPath)
	var info protocol.RelayInfo
	if err := json.Unmarshal([]byte(body), &info); err != nil || code != 200 {
		t.Fatalf("info: %d %v", code, err)
	}
	l := info.Limits
	if l.JournalQuota != 5<<20 || l.RequestRate != 0 || l.RequestBurst != 0 || l.JournalPutRate != 2.5 || l.JournalPutBurst != 9 ||
		l.MaxBlobSize != 64<<10 || l.MaxConnsPerAddr != 0 || l.MaxConnections != 3 || l.MaxUnauthConns != 40 || l.AuthTimeout != 3 {
		t.Fatalf("limits %+v", l)
	}
	d := &websocket.Dialer{}
	servertest.DialRawWith(t, d, "ws://"+p.addr+protocol.Path, http.Header{"Origin": {"https://a.example"}})
	if resp, _ := servertest.Refused(t, "ws://"+p.addr+protocol.Path, http.Header{"Origin": {"https://b.example"}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("unlisted origin: %s", resp.Status)
	}
}

// The HTTP server bounds how long a request header may take and how large
// it may be.
func TestHTTPHeaderLimits(t *testing.T) {
	p := startServe(t, "--read-header-timeout", "50ms", "--max-header-bytes", "1024")
	conn, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	// The relay gives up on the unfinished header and closes.
	conn.SetReadDeadline(time.Now().Add(servertest.ReadTimeout))
	if _, err := io.ReadAll(conn); err != nil {
		t.Fatalf("the relay did not close a connection whose header never ended: %v", err)
	}

	req, _ := http.NewRequest("GET", "http://"+p.addr+"/healthz", nil)
	req.Header.Set("X-Padding", strings.Repeat("x", 8192))
	resp, err := (&http.Client{Timeout: servertest.ReadTimeout}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("oversize header: %s", resp.Status)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
