package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
)

func cmdDemo(e *env) *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "see the whole flow: a relay and two partners on this machine, in temporary folders",
		Description: "Starts a relay on 127.0.0.1, makes two partners (Alex and Sam) in temporary homes,\n" +
			"pairs them, has Alex write while the relay is down, syncs, has Sam answer, and prints\n" +
			"both timelines beside what the relay actually stored. Everything is removed afterwards.\n" +
			"The demo's keys use a fast, weak passphrase setting because they are thrown away.",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "keep", Usage: "keep the temporary folders and print where they are"}},
		Action: func(c *cli.Context) error {
			return runDemo(e, c.Bool("keep"))
		},
	}
}

// demoRelay is a relay served on loopback that can be stopped and started
// again on the same address and data.
type demoRelay struct {
	store *server.BadgerStore
	addr  string
	srv   *server.Server
	http  *http.Server
}

func (r *demoRelay) start() error {
	srv, err := server.New(server.Config{Store: r.store})
	if err != nil {
		return err
	}
	addr := r.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	r.addr = ln.Addr().String()
	r.srv = srv
	r.http = &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go r.http.Serve(ln)
	return nil
}

func (r *demoRelay) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.http.Shutdown(ctx)
	r.srv.Close(ctx)
}

func runDemo(e *env, keep bool) (err error) {
	ctx := e.ctx
	dir, err := os.MkdirTemp("", "kintsugi-demo-")
	if err != nil {
		return err
	}
	if keep {
		defer e.printf("\nThe demo's folders are kept in %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	say := func(format string, args ...any) { e.printf(format+"\n", args...) }
	step := func(format string, args ...any) { e.printf("\n── "+format+"\n", args...) }

	store, err := server.OpenBadger(filepath.Join(dir, "relay"), nil)
	if err != nil {
		return err
	}
	defer store.Close()
	relay := &demoRelay{store: store}
	if err := relay.start(); err != nil {
		return err
	}
	defer func() { relay.stop() }()
	relayURL := "http://" + relay.addr

	say("Kintsugi demo: two partners, one relay that only ever sees ciphertext.")
	say("Relay listening on %s (data in a temporary folder).", relayURL)

	// The demo's passphrases are random and never shown; the homes are
	// deleted at the end.
	pass := make([]byte, 16)
	rand.Read(pass)
	pass = []byte(hex.EncodeToString(pass))
	step("Alex and Sam each make an identity on their own device")
	alex, err := client.Init(client.Home{Dir: filepath.Join(dir, "alex")}, "Alex", "alex-laptop", pass, crypto.TestingKDF)
	if err != nil {
		return err
	}
	sam, err := client.Init(client.Home{Dir: filepath.Join(dir, "sam")}, "Sam", "sam-phone", pass, crypto.TestingKDF)
	if err != nil {
		return err
	}
	say("Alex: identity and device keys, locked with a passphrase in %s", filepath.Base(alex.Home.Dir))
	say("Sam:  identity and device keys, locked with a passphrase in %s", filepath.Base(sam.Home.Dir))

	step("Alex creates the journal and makes a one-time invite")
	aj, err := alex.CreateJournal(ctx, relayURL, "Starting again")
	if err != nil {
		return err
	}
	defer aj.Close()
	code, exp, err := aj.Invite(ctx, 0)
	if err != nil {
		return err
	}
	say("Invite made; it works once and expires %s. (In real use Alex gives it to Sam privately;", exp.Local().Format("Mon 15:04"))
	say("it holds a secret, so the demo does not print it.)")

	step("Sam joins with the code")
	sj, err := sam.Join(ctx, code)
	if err != nil {
		return err
	}
	defer sj.Close()
	if _, err := aj.Sync(ctx); err != nil {
		return err
	}
	snA, _, err := aj.SafetyNumber()
	if err != nil {
		return err
	}
	snS, _, err := sj.SafetyNumber()
	if err != nil {
		return err
	}
	say("Alex sees safety number %s", snA)
	say("Sam  sees safety number %s", snS)
	if snA != snS {
		return errors.New("the safety numbers differ; the demo stops here")
	}
	say("They match, so nobody is in the middle. Both mark each other verified.")
	aj.ConfirmVerified()
	sj.ConfirmVerified()

	step("The relay goes away; Alex writes anyway (writing never needs the network)")
	relay.stop()
	intensity := 8
	feel, err := aj.Write(client.Payload{Kind: client.KindEntry, Text: "I keep replaying the night I found out. I'm angry, and under the anger I'm so sad.", Feelings: []string{"anger", "grief"}, Intensity: &intensity})
	if err != nil {
		return err
	}
	q, err := aj.Write(client.Payload{Kind: client.KindQuestion, Text: "When you said you were working late in March, where were you really?"})
	if err != nil {
		return err
	}
	say("Saved a feeling entry (%s) and a hard question (%s) on Alex's device.", feel.Short, q.Short)
	if _, err := aj.Sync(ctx); errors.Is(err, client.ErrUnreachable) {
		say("A sync now fails (the relay is down), and nothing is lost: both wait in Alex's outbox.")
	} else if err != nil {
		return err
	}

	step("The relay comes back; Alex syncs, then Sam syncs")
	if err := relay.start(); err != nil {
		return err
	}
	ra, err := aj.Sync(ctx)
	if err != nil {
		return err
	}
	say("Alex sent %d.", ra.Pushed)
	rs, err := sj.Sync(ctx)
	if err != nil {
		return err
	}
	say("Sam received %s from Alex.", plural(len(rs.New), "new entry", "new entries"))

	step("Sam answers the question honestly, and syncs; Alex syncs")
	ans, _, err := sj.Answer(q.Short, "I was at a hotel bar with them. I lied to you. I'm sorry, and I'll answer anything else you ask.")
	if err != nil {
		return err
	}
	say("Sam saved answer %s.", ans.Short)
	if _, err := sj.Sync(ctx); err != nil {
		return err
	}
	if _, err := aj.Sync(ctx); err != nil {
		return err
	}

	for _, side := range []struct {
		name string
		j    *client.Journal
	}{{"Alex", aj}, {"Sam", sj}} {
		step("%s's timeline, decrypted on %s's device", side.name, side.name)
		entries, err := side.j.Entries()
		if err != nil {
			return err
		}
		byID := entryMap{}
		for _, en := range entries {
			byID[en.ID] = en
		}
		for _, en := range entries {
			e.printEntry("", en, byID)
		}
	}

	step("What the relay stored for this journal (all it ever sees)")
	blobs, err := store.Read(ctx, aj.ID(), 0, 100)
	if err != nil {
		return err
	}
	for _, b := range blobs {
		if b.Purged {
			say("#%d  purged by its author", b.Seq)
			continue
		}
		h, _ := protocol.ParseHeader(b.Blob)
		peek := b.Blob[protocol.HeaderSize:min(len(b.Blob), protocol.HeaderSize+24)]
		say("#%d  %-5s %5d bytes  %s…", b.Seq, h.Kind, len(b.Blob), hex.EncodeToString(peek))
	}
	say("\nThe relay holds sizes rounded up to buckets, device keys and times: no words, no feelings, no names.")
	if !keep {
		say("The demo's temporary folders are removed now.")
	}
	return nil
}
