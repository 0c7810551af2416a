package client

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Drafts are sealed, listed oldest first, found by a unique start of their
// id, and deleted; a damaged one is listed as damaged and left alone.
func TestDrafts(t *testing.T) {
	a := testAccount(t, "Alex")
	if ds, err := a.Drafts(); err != nil || len(ds) != 0 {
		t.Fatalf("no drafts yet: %v, %v", ds, err)
	}
	d1, err := a.SaveDraft(KindEntry, "the first words I could not send")
	if err != nil {
		t.Fatal(err)
	}
	d2, err := a.SaveDraft(KindQuestion, "a question, kept")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(a.Home.Dir, "drafts", d1.ID))
	if err != nil || bytes.Contains(raw, []byte("first words")) {
		t.Fatalf("draft file: %v, or in the clear", err)
	}
	ds, err := a.Drafts()
	if err != nil || len(ds) != 2 || ds[0].ID != d1.ID || ds[0].Text != d1.Text || ds[1].What != KindQuestion {
		t.Fatalf("drafts: %+v, %v", ds, err)
	}
	if got, err := a.Draft(d2.ID[:4]); err != nil || got.Text != d2.Text {
		t.Fatalf("find: %+v, %v", got, err)
	}
	if _, err := a.Draft("zzzz"); !errors.Is(err, ErrNoSuchDraft) {
		t.Fatalf("unknown id: %v", err)
	}
	// Damage one: it is listed as damaged, not dropped and not removed.
	raw[len(raw)-1] ^= 1
	if err := os.WriteFile(filepath.Join(a.Home.Dir, "drafts", d1.ID), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	ds, _ = a.Drafts()
	if len(ds) != 2 || !ds[0].Damaged && !ds[1].Damaged {
		t.Fatalf("damaged draft: %+v", ds)
	}
	if err := a.DeleteDraft(d2.ID); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteDraft(d2.ID); !errors.Is(err, ErrNoSuchDraft) {
		t.Fatalf("deleted twice: %v", err)
	}
	if ds, _ := a.Drafts(); len(ds) != 1 || ds[0].ID != d1.ID {
		t.Fatalf("after delete: %+v", ds)
	}
}
