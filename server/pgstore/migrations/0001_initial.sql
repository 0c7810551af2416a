-- The relay's tables. Everything is ciphertext or routing metadata: journal
-- ids, device keys, sizes, times (docs/threat-model.md).

-- The relay's own settings; today only its id ('id').
CREATE TABLE relay (
    key   text PRIMARY KEY,
    value text NOT NULL
);

-- A journal. Changes to its members lock its row (FOR NO KEY UPDATE), so
-- they happen one at a time per journal, across every relay.
CREATE TABLE journals (
    id      bytea PRIMARY KEY CHECK (octet_length(id) = 16),
    created timestamptz NOT NULL DEFAULT now()
);

-- The head of a journal's log: its last sequence number and the bytes its
-- blobs take (the journal quota). Appends lock it (FOR UPDATE) in their
-- transaction, so sequence numbers are handed out in commit order.
CREATE TABLE logs (
    journal  bytea PRIMARY KEY REFERENCES journals (id),
    last_seq bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    bytes    bigint NOT NULL DEFAULT 0 CHECK (bytes >= 0)
);

-- Member devices, each filed under a person (the device that joined).
CREATE TABLE members (
    journal bytea NOT NULL REFERENCES journals (id),
    device  bytea NOT NULL CHECK (octet_length(device) = 32),
    person  bytea NOT NULL CHECK (octet_length(person) = 32),
    since   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (journal, device)
);

-- Devices removed from a journal for good: they cannot come back.
CREATE TABLE removed_devices (
    journal bytea NOT NULL REFERENCES journals (id),
    device  bytea NOT NULL CHECK (octet_length(device) = 32),
    removed timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (journal, device)
);

-- Each journal's log. No foreign key to journals: every append has locked
-- the journal's logs row already, and a key check per blob costs ingest.
-- (journal, id) is unique, so no blob is stored twice in a journal even
-- by a writer that skipped the lock.
CREATE TABLE blobs (
    journal bytea NOT NULL,
    seq     bigint NOT NULL CHECK (seq > 0),
    id      bytea NOT NULL CHECK (octet_length(id) = 32),
    purged  boolean NOT NULL DEFAULT false,
    data    bytea NOT NULL,
    PRIMARY KEY (journal, seq),
    UNIQUE (journal, id)
);
-- Ciphertext does not compress: store it out of line without trying.
ALTER TABLE blobs ALTER COLUMN data SET STORAGE EXTERNAL;

-- One-time invites and device links (kind 0: invite, 1: invite made
-- again, 2: link), under the SHA-256 of their auth token.
CREATE TABLE invites (
    auth_hash bytea PRIMARY KEY CHECK (octet_length(auth_hash) = 32),
    journal   bytea NOT NULL REFERENCES journals (id),
    kind      smallint NOT NULL CHECK (kind BETWEEN 0 AND 2),
    expires   timestamptz NOT NULL,
    packet    bytea NOT NULL
);
CREATE INDEX invites_expires ON invites (expires);
