package main

import (
	"fmt"
	"strings"

	"github.com/kintsugi-journal/kintsugi/client"
)

// sentence words a notice for a person: plain, never shaming, saying what
// is safe and what they can do. The client records kinds and data
// (client/notice.go); every sentence about them is written here.
func sentence(n client.Notice) string {
	who := clean(n.Who)
	count := max(n.Count, 1)
	at := func(one, many string) string {
		if count == 1 {
			return fmt.Sprintf(one, n.Position)
		}
		return fmt.Sprintf(many, count, n.Position)
	}
	times := ""
	if count > 1 {
		times = fmt.Sprintf(" (%d times)", count)
	}
	switch n.Kind {
	case client.NoticeLegacy:
		return clean(n.Text)
	case client.NoticeRelayBadPurge:
		return at("the relay sent a malformed purged record (position %d); it was set aside",
			"the relay sent %d malformed purged records (the latest at position %d); they were set aside")
	case client.NoticeRelayBadItem:
		return at("the relay sent something that is not a valid entry for this journal (position %d); it was set aside",
			"the relay sent %d things that are not valid entries for this journal (the latest at position %d); they were set aside")
	case client.NoticeRelayReplayed:
		return at("the relay sent again, at a new place in its history, something it had already sent (position %d); nothing was shown twice and nothing changed",
			"the relay sent again, at new places in its history, %d things it had already sent (the latest at position %d); nothing was shown twice and nothing changed") +
			". A relay keeps each item once, so this should not happen; a relay restored from an older copy can do it once. If it keeps happening, tell whoever runs the relay"
	case client.NoticeRelayForgedOwn:
		// What this usually is: this device's backup restored on another
		// machine, which now writes as this device. Two machines writing
		// as one device split its history, so one should stop. Both see
		// the other's writes, and neither can tell which the person
		// keeps, so the words are the same on both.
		return at("the relay sent something claiming to come from this device that it never wrote (position %d); it was set aside",
			"the relay sent %d things claiming to come from this device that it never wrote (the latest at position %d); they were set aside") +
			". This usually means this device's keys are in use on two machines, as when a backup is restored on a second one while the first is still used. Two machines writing as one device split its history: keep using the one you mean to keep, and stop using the other. If no one restored a backup, tell whoever runs the relay"
	case client.NoticeRelayChanged:
		return at("the relay sent an entry that was changed on the way, or was not written by the device it names (position %d); it does not match what was sealed for this device, so it was set aside and is not shown",
			"the relay sent %d entries that were changed on the way, or were not written by the devices they name (the latest at position %d); they do not match what was sealed for this device, so they were set aside and are not shown") +
			". Nothing already here was changed. If it keeps happening, tell whoever runs the relay"
	case client.NoticeRestoreStrays:
		what := fmt.Sprintf("%d items that claim to come from this device and are", count)
		if count == 1 {
			what = "1 item that claims to come from this device and is"
		}
		return fmt.Sprintf("the relay sent %s not part of its history; set aside", what)
	case client.NoticeLateJoin:
		return "an invite code was used after your partner had joined" + times + "; it was refused, and nothing here can be read with it. If neither of you shared a second code, tell whoever runs the relay"
	case client.NoticeJoinUnopened:
		return "someone answered an invite with details that did not open" + times + "; they were not added"
	case client.NoticeJoinInvalid:
		return "someone answered an invite with details that did not check out" + times + "; they were not added"
	case client.NoticeDeviceInvalid:
		if count > 1 {
			return fmt.Sprintf("%d new devices from %s did not check out, so nothing is sent to them", count, who)
		}
		return fmt.Sprintf("a new device from %s did not check out, so nothing is sent to it", who)
	case client.NoticeDeviceCollides:
		if count > 1 {
			return fmt.Sprintf("%d new devices from %s use keys another device already has, so nothing is sent to them", count, who)
		}
		return fmt.Sprintf("a new device from %s uses keys another device already has, so nothing is sent to it", who)
	case client.NoticeThisDeviceRemoved:
		return "another of your devices removed this one from the journal; it can still show what it already has, but it no longer receives anything new"
	case client.NoticePartnerLeft:
		return fmt.Sprintf("%s left the journal on %s. Nothing written here from now on is sent to them; they keep what they had already read", who, n.Date.Local().Format("2 January 2006"))
	case client.NoticeIdentityChanged:
		// Who is the partner as known; NewName the name the new keys
		// give, which may differ.
		answered := who + " answered your invite with new keys"
		if nn := clean(n.NewName); nn != "" && nn != who {
			answered = fmt.Sprintf("someone giving the name %s answered your invite for %s, with new keys", nn, who)
		}
		return fmt.Sprintf("Your partner's safety number has changed: %s. This is expected if %s set kintsugi up again, for example after losing a phone, but it is also what someone pretending to be %s would do. Nothing new is sent to the new keys until you compare the new safety number together, in person or on a call (`kintsugi verify`), and confirm it with `kintsugi verify --confirm`", answered, who, who)
	case client.NoticeRestorePending:
		return fmt.Sprintf("this device was restored from a backup on %s and has not yet collected its own earlier entries from the relay; writing waits until `kintsugi sync` has done that", n.Date.Local().Format("2 Jan 2006"))
	case client.NoticeLostUnsent:
		what := "an entry you wrote on this device had"
		if n.Count != 1 {
			what = fmt.Sprintf("%d entries you wrote on this device had", n.Count)
		}
		said := fmt.Sprintf("on %s, %s not been sent yet and could not be read back after a file on this device was damaged; we are sorry. What was sent before is safe on the relay", n.Date.Local().Format("2 January 2006"), what)
		if len(n.Lost) == 0 {
			return said
		}
		// Which ones, after the apology rather than between the loss and
		// it, so the words can be written again; their first words are in
		// `status --json` (not here: this sentence may also go to a
		// service's log).
		lines := make([]string, len(n.Lost))
		for i, l := range n.Lost {
			lines[i] = lostLine(l, false)
		}
		switch {
		case len(n.Lost) == 1 && n.Count <= 1:
			return said + ". If you want to write it again, it was " + lines[0]
		case len(n.Lost) < n.Count:
			// The client names only the newest of many.
			return said + fmt.Sprintf(". If you want to write them again, the newest %d of them were: %s", len(n.Lost), strings.Join(lines, "; "))
		}
		return said + ". If you want to write them again, they were: " + strings.Join(lines, "; ")
	case client.NoticeRepairPending:
		return fmt.Sprintf("this journal's file on this device was repaired on %s and has not yet collected this device's earlier entries from the relay; writing waits until `kintsugi sync` has done that", n.Date.Local().Format("2 Jan 2006"))
	case client.NoticeRestoreOlder:
		return fmt.Sprintf("this device's history on the relay looks older than the backup: the backup knows %d items from this device, and the relay has only %d. Nothing was changed, and writing here waits so your history is not split in two", n.Want, n.Count)
	case client.NoticeRestoreForked:
		return "the relay holds two different histories for this device since the backup was made. Nothing was changed, and writing here waits so your history is not split further"
	case client.NoticeDeviceAdded:
		label := "unnamed"
		if n.Device != "" {
			label = fmt.Sprintf("%q", clean(n.Device))
		}
		return fmt.Sprintf("%s added a device (%s, %s)", who, label, n.DeviceID)
	case client.NoticeDeviceRemoved:
		return fmt.Sprintf("%s removed a device (%s); nothing new is sent to it", who, n.DeviceID)
	case client.NoticeMissingItems:
		if n.DamagedHere {
			// They may well have arrived: part of this device's file
			// was damaged and set aside. Never "not arrived" then.
			what := fmt.Sprintf("1 earlier item from %s is", deviceWords(n))
			if count > 1 {
				what = fmt.Sprintf("%d earlier items from %s are", count, deviceWords(n))
			}
			// Every gap is marked while a refetch is pending, not only
			// those the damage made: "may", not "was".
			return what + " not on this device now. Part of this journal's file here was damaged and set aside, and it may have been there; what the relay holds is safe there, and `kintsugi sync` fetches it again"
		}
		if count == 1 {
			return fmt.Sprintf("1 earlier item from %s has not arrived yet", deviceWords(n))
		}
		return fmt.Sprintf("%d earlier items from %s have not arrived yet", count, deviceWords(n))
	case client.NoticeForkedHistory:
		said := fmt.Sprintf("%s has two different histories: it may have been copied or restored from a backup, or someone else may have its keys", deviceWords(n))
		if n.ThisDevice {
			return said + ". If a backup of it was restored on another machine, keep writing on the one you mean to keep and stop using the other; if not, link a new device (`kintsugi device link`) and remove this one (`kintsugi device revoke`)"
		}
		owner := who
		if owner == "" {
			owner = "its owner"
		}
		return said + fmt.Sprintf(". Most often %s restored a backup on a new machine and still writes on the old one; ask them. If they did not, they can remove that device (`kintsugi device revoke`)", owner)
	}
	// A kind from a newer client library: say so plainly rather than
	// nothing.
	return fmt.Sprintf("kintsugi noticed something this version cannot describe yet (%s)", clean(string(n.Kind)))
}

// deviceWords names the device a gap is about.
func deviceWords(n client.Notice) string {
	switch {
	case n.ThisDevice:
		return "this device"
	case n.Who == "":
		return "an unknown device"
	case n.Device == "":
		return clean(n.Who) + "'s device"
	}
	return fmt.Sprintf("%s's device %q", clean(n.Who), clean(n.Device))
}

// sentences words each notice.
func sentences(ns []client.Notice) []string {
	out := []string{}
	for _, n := range ns {
		out = append(out, sentence(n))
	}
	return out
}

// unread returns the notices status shows: those that hold, and those not
// marked read.
func unread(ns []client.Notice) []client.Notice {
	var out []client.Notice
	for _, n := range ns {
		if !n.Acknowledged {
			out = append(out, n)
		}
	}
	return out
}
