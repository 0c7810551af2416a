package server

import (
	"errors"
	"sync"

	"github.com/gorilla/websocket"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// deviceConns tracks authenticated connections by device, so a device that
// is removed from a journal can be cut off at once rather than keep using a
// membership its connection already checked.
type deviceConns struct {
	mu sync.Mutex
	m  map[[32]byte]map[*conn]struct{} // guarded by mu
}

func (d *deviceConns) add(c *conn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = make(map[[32]byte]map[*conn]struct{})
	}
	set := d.m[c.device]
	if set == nil {
		set = make(map[*conn]struct{})
		d.m[c.device] = set
	}
	set[c] = struct{}{}
}

func (d *deviceConns) remove(c *conn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	set := d.m[c.device]
	delete(set, c)
	if len(set) == 0 {
		delete(d.m, c.device)
	}
}

// cut ends every connection of device, except skip, with a
// policy-violation close. The device reconnects, if it tries, as a
// non-member of the journal it was removed from.
func (d *deviceConns) cut(device [32]byte, skip *conn) int {
	d.mu.Lock()
	var conns []*conn
	for c := range d.m[device] {
		if c != skip {
			conns = append(conns, c)
		}
	}
	d.mu.Unlock()
	for _, c := range conns {
		c.abort(websocket.ClosePolicyViolation, "device removed from a journal")
	}
	return len(conns)
}

func (c *conn) handleAddDevice(r *request) bool {
	if cont, member := c.requireMember(r); !member {
		return cont
	}
	err := AddDevice(c.ctx, c.s.cfg.Store, r.Journal, c.device, r.Device)
	if err != nil {
		return c.deviceError(r, err)
	}
	c.log.Info("device added", "journal", r.Journal.String(), "added", shortID(r.Device[:]))
	return c.reply(c.ok(r.ID))
}

func (c *conn) handleRemoveDevice(r *request) bool {
	if cont, member := c.requireMember(r); !member {
		return cont
	}
	err := RemoveDevice(c.ctx, c.s.cfg.Store, r.Journal, c.device, r.Device)
	if err != nil {
		return c.deviceError(r, err)
	}
	n := c.s.devices.cut(r.Device, nil)
	c.log.Info("device removed", "journal", r.Journal.String(), "removed", shortID(r.Device[:]), "connections_closed", n)
	return c.reply(c.ok(r.ID))
}

func (c *conn) handleLeave(r *request) bool {
	if cont, member := c.requireMember(r); !member {
		return cont
	}
	removed, err := Leave(c.ctx, c.s.cfg.Store, r.Journal, c.device)
	if err != nil {
		return c.deviceError(r, err)
	}
	// This connection stays open to carry the answer, but its
	// membership and any subscription to the journal end now.
	delete(c.members, r.Journal)
	if sub := c.subs[r.Journal]; sub != nil {
		c.stopSub(sub) // it sends nothing more, stored history included
	}
	n := 0
	for _, d := range removed {
		n += c.s.devices.cut(d, c)
	}
	c.log.Info("left journal", "journal", r.Journal.String(), "devices", len(removed), "connections_closed", n)
	return c.reply(c.ok(r.ID))
}

// deviceError answers a device request whose store operation failed.
func (c *conn) deviceError(r *request, err error) bool {
	switch {
	case errors.Is(err, protocol.ErrNotMember):
		delete(c.members, r.Journal)
		return c.reply(reqError(r.ID, protocol.CodeNotMember, "this device is not a member of journal %s", r.Journal))
	case errors.Is(err, protocol.ErrNotFound):
		return c.reply(reqError(r.ID, protocol.CodeNotFound, "that device is not a member of journal %s", r.Journal))
	case errors.Is(err, protocol.ErrInvalid):
		return c.reply(reqError(r.ID, protocol.CodeInvalid, "%s", unwrapMessage(err)))
	}
	return c.internal(r, err)
}

// unwrapMessage returns the part of a rule's error after the sentinel's
// text, which is the sentence for the client (devices.go).
func unwrapMessage(err error) string {
	s := err.Error()
	p := protocol.ErrInvalid.Error() + ": "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}
