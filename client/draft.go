package client

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kintsugi-journal/kintsugi/crypto"
)

// A draft is text a person wrote that could not be saved as an entry: it
// was too long for one, or the editor it was written in failed, or the
// entry could not be written. What a person wrote is never thrown away:
// the draft is kept in HOME/drafts/ID, sealed with the storage key like
// every other local file (never in the clear), until it is used or
// deleted. Drafts belong to the person, not to a journal, and stay on this
// device (a backup does not carry them).

// Draft is one kept draft.
type Draft struct {
	ID      string    `json:"-"`       // 8 hex digits; the file's name
	What    string    `json:"what"`    // what it was written as: "entry", "question", "answer", ...
	Created time.Time `json:"created"` // when it was kept
	Text    string    `json:"text"`
	// Damaged: the file could not be opened (altered, cut short, or
	// sealed with another key). It is left where it is; What, Created
	// and Text are empty.
	Damaged bool `json:"-"`
}

// ErrNoSuchDraft: no kept draft has that id (or starts with it).
var ErrNoSuchDraft = errors.New("no draft with that id")

func (h Home) draftDir() string { return filepath.Join(h.Dir, "drafts") }

// SaveDraft keeps text, written as what, sealed in the home's drafts.
func (a *Account) SaveDraft(what, text string) (Draft, error) {
	d := Draft{What: what, Created: time.Now().UTC(), Text: text}
	var id [4]byte
	if _, err := rand.Read(id[:]); err != nil {
		return Draft{}, err
	}
	d.ID = hex.EncodeToString(id[:])
	plain, err := json.Marshal(d)
	if err != nil {
		return Draft{}, err
	}
	defer clear(plain)
	sealed, err := crypto.Seal(rand.Reader, &a.storageKey, plain)
	if err != nil {
		return Draft{}, err
	}
	dir := a.Home.draftDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Draft{}, err
	}
	if err := writeFileAtomic(filepath.Join(dir, d.ID), sealed, true); err != nil {
		return Draft{}, fmt.Errorf("keep draft: %w", err)
	}
	return d, nil
}

// Drafts returns the kept drafts, oldest first.
func (a *Account) Drafts() ([]Draft, error) {
	names, err := os.ReadDir(a.Home.draftDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Draft
	for _, n := range names {
		if !isDraftID(n.Name()) {
			continue // a temporary file of a write in progress
		}
		out = append(out, a.readDraft(n.Name()))
	}
	slices.SortStableFunc(out, func(x, y Draft) int { return x.Created.Compare(y.Created) })
	return out, nil
}

// Draft returns the kept draft whose id starts with prefix.
func (a *Account) Draft(prefix string) (Draft, error) {
	ds, err := a.Drafts()
	if err != nil {
		return Draft{}, err
	}
	var found []Draft
	for _, d := range ds {
		if strings.HasPrefix(d.ID, strings.ToLower(prefix)) {
			found = append(found, d)
		}
	}
	switch {
	case prefix == "" || len(found) == 0:
		return Draft{}, ErrNoSuchDraft
	case len(found) > 1:
		return Draft{}, fmt.Errorf("%w: more than one draft starts with %q", ErrNoSuchDraft, prefix)
	}
	return found[0], nil
}

// DeleteDraft removes the draft with id (as Drafts gives it).
func (a *Account) DeleteDraft(id string) error {
	if !isDraftID(id) {
		return ErrNoSuchDraft
	}
	err := os.Remove(filepath.Join(a.Home.draftDir(), id))
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNoSuchDraft
	}
	return err
}

func (a *Account) readDraft(id string) Draft {
	b, err := os.ReadFile(filepath.Join(a.Home.draftDir(), id))
	if err != nil {
		return Draft{ID: id, Damaged: true}
	}
	plain, err := crypto.Open(&a.storageKey, b)
	if err != nil {
		return Draft{ID: id, Damaged: true}
	}
	defer clear(plain)
	var d Draft
	if err := json.Unmarshal(plain, &d); err != nil {
		return Draft{ID: id, Damaged: true}
	}
	d.ID = id
	return d
}

func isDraftID(s string) bool {
	if len(s) != 8 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}
