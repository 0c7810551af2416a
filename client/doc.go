// Package client is the partner's side of Kintsugi: the key file, the local
// store (ciphertext only at rest), the outbox, the sync engine and the
// entry model. It is the only package that decrypts.
//
// # Local layout
//
//	HOME/identity.key             the key file (0600), see crypto.SealKeyFile
//	HOME/current                  the id of the journal commands act on
//	HOME/journals/ID/log          append-only record log of blobs (ciphertext)
//	HOME/journals/ID/state        journal state, sealed with the storage key
//	HOME/journals/ID/state.prev   its previous generation (repair.go)
//	HOME/journals/ID/index        the checkpoint of the index, sealed (checkpoint.go)
//	HOME/journals/ID/unsent       entries not yet acknowledged, sealed (repair.go)
//	HOME/journals/ID/lock         flock(2) lock shared by every process on HOME
//	HOME/drafts/ID                text from the editor not saved as an entry, sealed (draft.go)
//	HOME/journals/ID/watching     shared flock(2) held by a connected `sync --watch` (watching.go)
//	HOME/journals/ID/sending      flock(2) held while puts are on their way; names those handed over unheard (watching.go)
//
// Every process takes the journal's lock for each read-modify-write, and
// catches up on records other processes appended, so a `sync --watch` in one
// terminal and a `write` in another both work. A command reads only what
// changed since the checkpoint, and only the entries it shows
// ([Journal.Reader]); damaged files are healed ([Journal.Repairs]).
// docs/local-store.md describes all of it.
//
// # Inside a Journal
//
// A [Journal] is the public facade over one journal's local files. It
// holds the cross-process lock, the account's keys and the journal's
// sealed state (members, invites, notices; the methods on state read and
// change only it, and are handed the store where they look blobs up).
// Every exported method takes the lock and composes the components below;
// so do the unexported steps that need more than one of them (catching
// up, appending, healing the log, applying what a sync brought, writing
// grants). Each component owns its fields: its methods touch only them
// and what they are passed.
//
//   - store (logIndex; store.go, checkpoint.go, index.go): the log file
//     and what is indexed from it: every blob by id and by chain id, the
//     relay's cursor, acknowledgements and purges, this device's chain
//     head, damage met while reading back. It knows nothing of keys,
//     trust or what an entry says: it is handed a callback to run after
//     each batch it indexes, a proves function to tell whether a damaged
//     record is this device's own, and the sealing of its checkpoint. The
//     checkpoint's format is the store's; the model writes and reads its
//     own part of it (checkpointPart).
//   - trust (trust, trustCache; trust.go): who may author what, built by
//     a trustCache from the state's members, rebuilt only when they
//     change, and read through [Journal.trust]. It knows nothing of the
//     log.
//   - model (openIndex; model.go, and beside what asks: status.go,
//     compare.go, view.go, adopt.go, sync.go): what this device opened
//     from the store with its keys, under a trust it is passed, never
//     builds: the opened entries without their text, grant checks, what
//     waits for a key, and answers that are costly to find again (gaps,
//     which entries still owe a grant). It reads the store and never
//     appends to it.
//   - sync (exchange; sync.go): one connection's exchange with the relay
//     (send, pull, settle, watch). It holds the connection and what the
//     exchange found, and drives the store and the model only through the
//     Journal, each step under the Journal's lock.
//
// Calls go one way: the facade and an exchange call the model, the store
// and trust; the model calls the store; the store and trust call nobody
// (the store only calls back what it is handed). The unsent witness
// (unsentFile, repair.go) is a small file of its own, handed the store
// when it prunes.
package client
