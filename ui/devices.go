package ui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kintsugi-journal/kintsugi/client"
)

// The person's devices, as `kintsugi device list`, `device link` and
// `device revoke` have them: each device with when it was linked and last
// synced; a form that makes a one-time code for a new device; and
// removing one, for example a lost one, after a confirmation step.
//
// The link code is a secret (it sets up a device that reads and writes
// everything as the person): it is shown once, in the answer to the form
// that made it, never put in an address (so no history, log or Referer
// holds it) and never logged; like every page it is sent with
// Cache-Control: no-store, so going back or reloading does not show it
// again. A reload asks the browser to send the form again, which makes a
// new code; the old one still expires.

// deviceView is a device as the devices page shows it.
type deviceView struct {
	ID, Name string
	Linked   string
	Synced   string // "last synced …", or "" when removed
	This     bool
	Removed  string // when it was removed, or ""
}

// linkedCode is a link code just made, shown once.
type linkedCode struct {
	Code, Name, Expires string
}

// revokeAsk is the confirmation step of removing a device.
type revokeAsk struct {
	ID, Name, Question string
}

// devicesInfo is what the devices page shows.
type devicesInfo struct {
	Devices []deviceView
	Link    *linkedCode
	Ask     *revokeAsk
}

// deviceTimeout bounds linking and removing, which talk to each
// journal's relay.
const deviceTimeout = 60 * time.Second

func (s *Server) devicesPage(w http.ResponseWriter, r *http.Request) {
	o, release := s.journal(r)
	if o == nil {
		http.Redirect(w, r, "/unlock", http.StatusSeeOther)
		return
	}
	defer release()
	s.showDevices(w, r, http.StatusOK, o, &devicesInfo{}, "", nil)
}

// showDevices renders the devices page with info (a code just made, a
// confirmation to ask) filled in with the list.
func (s *Server) showDevices(w http.ResponseWriter, r *http.Request, status int, o *opened, info *devicesInfo, notice string, prob *problem) {
	devs, err := o.acct.Devices()
	if err != nil {
		s.failed(w, r, err)
		return
	}
	q := r.URL.Query()
	for _, d := range devs {
		if r.Method == http.MethodGet && d.ID == q.Get("removed") && d.Removed != nil {
			n, _ := strconv.Atoi(q.Get("journals"))
			notice = fmt.Sprintf("Removed %s (%s) from %s. The relay no longer lets it in, and nothing new is sealed to it.", d.Name, d.ID, plural(n, "journal", "journals"))
		}
		v := deviceView{ID: d.ID, Name: d.Name, Linked: d.Created.Local().Format("2 Jan 2006"), This: d.This, Synced: "last synced: not known here"}
		if v.Name == "" {
			v.Name = "(unnamed)"
		}
		if d.LastSync != nil {
			v.Synced = "last synced " + d.LastSync.Local().Format("Mon 2 Jan 15:04")
		}
		if d.Removed != nil {
			v.Removed, v.Synced = d.Removed.Local().Format("2 Jan 2006"), ""
		}
		info.Devices = append(info.Devices, v)
	}
	s.render(w, r, status, "devices", &page{Title: "Your devices", Journal: o.j.Title(), Devices: info, Notice: notice, Error: prob})
}

// linkDevice makes a one-time code for a new device and shows it, once.
func (s *Server) linkDevice(w http.ResponseWriter, r *http.Request) {
	o, release := s.journal(r)
	if o == nil {
		http.Redirect(w, r, "/unlock", http.StatusSeeOther)
		return
	}
	defer release()
	name := strings.TrimSpace(r.PostFormValue("name"))
	if name == "" {
		name = "new device"
	}
	ctx, cancel := context.WithTimeout(r.Context(), deviceTimeout)
	defer cancel()
	code, exp, err := o.acct.LinkDevice(ctx, name, client.DefaultLinkTTL)
	if err != nil {
		msg, hint := s.cfg.Describe(err)
		s.showDevices(w, r, http.StatusConflict, o, &devicesInfo{}, "", &problem{Msg: msg, Hint: hint})
		return
	}
	s.cfg.Logger.Info("made a device link code") // never the code
	s.showDevices(w, r, http.StatusOK, o, &devicesInfo{Link: &linkedCode{Code: code, Name: name, Expires: exp.Local().Format("Mon 2 Jan 15:04")}}, "", nil)
}

// revokeDevice removes one of the person's other devices: the first post
// asks for the confirmation, the second (with confirm=yes) removes it.
func (s *Server) revokeDevice(w http.ResponseWriter, r *http.Request) {
	o, release := s.journal(r)
	if o == nil {
		http.Redirect(w, r, "/unlock", http.StatusSeeOther)
		return
	}
	defer release()
	which := strings.TrimSpace(r.PostFormValue("device"))
	if which == "" {
		s.showDevices(w, r, http.StatusBadRequest, o, &devicesInfo{}, "", &problem{Msg: "which device? none was chosen, so nothing was changed", Hint: "choose Remove next to the device in the list"})
		return
	}
	devs, err := o.acct.Devices()
	if err != nil {
		s.failed(w, r, err)
		return
	}
	var d *client.Device
	for i := range devs {
		if devs[i].ID == which {
			d = &devs[i]
		}
	}
	switch {
	case d == nil:
		msg, hint := s.cfg.Describe(fmt.Errorf("%w %q", client.ErrNoSuchDevice, which))
		s.showDevices(w, r, http.StatusNotFound, o, &devicesInfo{}, "", &problem{Msg: msg, Hint: hint})
		return
	case d.This:
		s.showDevices(w, r, http.StatusConflict, o, &devicesInfo{}, "", thisDevice())
		return
	case d.Removed != nil:
		s.showDevices(w, r, http.StatusConflict, o, &devicesInfo{}, "", &problem{Msg: "that device was removed already, so nothing was changed", Hint: "to use it again, link it again from here"})
		return
	}
	if r.PostFormValue("confirm") != "yes" {
		q := fmt.Sprintf("Remove %q from every journal? It cannot be added back; link it again to use it.", d.Name)
		s.showDevices(w, r, http.StatusOK, o, &devicesInfo{Ask: &revokeAsk{ID: d.ID, Name: d.Name, Question: q}}, "", nil)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), deviceTimeout)
	defer cancel()
	gone, n, err := o.acct.RemoveDevice(ctx, d.ID)
	switch {
	case errors.Is(err, client.ErrThisDevice):
		s.showDevices(w, r, http.StatusConflict, o, &devicesInfo{}, "", thisDevice())
		return
	case err != nil:
		// Removed where it could be, perhaps: say what happened and
		// what did not.
		msg, hint := s.cfg.Describe(err)
		notice := ""
		if gone != nil && n > 0 {
			notice = fmt.Sprintf("Removed %s (%s) from %s; one could not be done yet. Trying again, or your other devices at their next sync, finish the rest.", gone.Name, gone.ID, plural(n, "journal", "journals"))
		}
		s.showDevices(w, r, http.StatusBadGateway, o, &devicesInfo{}, notice, &problem{Msg: msg, Hint: hint})
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/devices?removed=%s&journals=%d", gone.ID, n), http.StatusSeeOther)
}

// thisDevice words client.ErrThisDevice for the page.
func thisDevice() *problem {
	return &problem{Msg: "that is the device you are using, so it stays", Hint: "to remove it, open kintsugi on another of your devices and remove it from there"}
}

// plural says n thing or n things.
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
