// Package ui serves a partner's journal as pages in their own browser, from
// their own client process on 127.0.0.1: the keys never leave the process,
// the relay still sees only ciphertext, and nothing is hosted anywhere.
//
// It is a library, like the relay: [New] builds a [Server] and
// [Server.Serve] answers on a listener the caller opened (the `kintsugi ui`
// command owns flags, the listener, the browser and signals). The server is
// a thin layer over package client: it reads with a [client.Reader],
// writes with [client.Journal.Write] and keeps a [client.Journal.Watch]
// running while unlocked; it holds no journal logic of its own.
//
// # Pages
//
// The timeline (newest first, 50 a page, with the filters `kintsugi log`
// has), an entry with its thread and the ways to respond to it, writing,
// questions (hard ones, and reveal-together), commitments with their
// record strip and check-ins, agreements, prompts and reflecting, the
// feelings chart over months, the safety number, the person's devices
// (linking one with a code shown once, removing one after a
// confirmation), export, and status with its warnings (marked read one
// at a time or all at once) and those of the record the person's devices
// share. Every page reads and every form posts without JavaScript;
// static/live.js only brings new entries into an open timeline (GET
// /events, server-sent events) and shows the slider's number.
//
// # Who may use it
//
// A page served on 127.0.0.1 is reachable by every process and every user
// of the machine, and by any web page the browser opens (through DNS
// rebinding or cross-site requests). So:
//
//   - The server starts with a one-time token (32 random bytes) in the URL
//     it prints. The first request carrying it gets an HttpOnly,
//     SameSite=Strict cookie and a redirect to a URL without the token; the
//     token never works again. Every other request needs that cookie, else
//     it gets a 403 page.
//   - The Host header must name the loopback address and port the server
//     listens on (or localhost and that port), else 421: a rebound DNS name
//     never reaches a page.
//   - An Origin header, when there is one, must be this server's own
//     ("null", which browsers send for a page's own form posts under
//     no-referrer, only with Sec-Fetch-Site: same-origin).
//   - Every form carries the session's CSRF token, compared in constant
//     time; a POST without it is refused with 403.
//   - Every response has a strict Content-Security-Policy (no inline
//     script or style, nothing from elsewhere), nosniff, no referrer, and
//     Cache-Control: no-store.
//   - [CheckListen] refuses any address that is not loopback.
//
// # Unlocking
//
// The server starts locked. On the first request it asks the unlock agent
// (the session `kintsugi unlock` starts), and if none answers it shows a
// page asking for the passphrase, posted only to this process, read as
// bytes and wiped after use, never logged. The Lock button forgets the keys
// and the journal in this process and also locks the agent's session, as
// `kintsugi lock` does: otherwise the next page would simply unlock again.
// After [Config.IdleLock] without a request from the person (the live
// updates do not count), the server locks itself the same way, except that
// it leaves the agent's session to its own expiry.
package ui
