package server

import (
	"sync"
	"time"
)

// Pings from one timer.
//
// The relay pings every connection every PingInterval (docs/protocol.md
// §8). A ticker per connection would keep a timer per connection and wake
// its writer goroutine to write each ping; instead one timer wheel per
// relay spreads the connections over pingSlots slots of PingInterval /
// pingSlots each and, every slot's length, pings the connections of the
// next slot. A connection stays in the slot it joined, so it is pinged
// every PingInterval, the first time one PingInterval after it opened,
// give or take a slot's length. The timer runs only while there are
// connections; no goroutine waits for it (time.AfterFunc).
//
// A ping is written by the wheel's callback itself when the connection is
// idle and its socket takes it at once (conn.ping, pushDirect's way);
// otherwise the connection's writer writes it.

// pingSlots is how many slots the wheel has: connections opened at once
// are pinged spread over about this many moments of each interval.
const pingSlots = 16

type pinger struct {
	mu     sync.Mutex
	tick   time.Duration // static: PingInterval / pingSlots
	slots  [pingSlots]map[*conn]struct{}
	count  int         // connections in the wheel
	cursor int         // the slot pinged last
	timer  *time.Timer // nil until the first connection
	armed  bool        // timer will fire
	due    []*conn     // reused by fire
}

func (p *pinger) init(interval time.Duration) {
	p.tick = max(interval/pingSlots, time.Nanosecond)
}

// add puts c in the wheel: it is pinged one PingInterval from now (less
// at most one slot's length), and every PingInterval after that.
func (p *pinger) add(c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	slot := p.cursor // pinged again after a full turn
	if p.slots[slot] == nil {
		p.slots[slot] = make(map[*conn]struct{})
	}
	p.slots[slot][c] = struct{}{}
	c.pingSlot = slot
	p.count++
	if !p.armed {
		if p.timer == nil {
			p.timer = time.AfterFunc(p.tick, p.fire)
		} else {
			p.timer.Reset(p.tick)
		}
		p.armed = true
	}
}

// remove takes c out of the wheel. It may be called more than once.
func (p *pinger) remove(c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c.pingSlot < 0 {
		return
	}
	delete(p.slots[c.pingSlot], c)
	if len(p.slots[c.pingSlot]) == 0 {
		p.slots[c.pingSlot] = nil // let the map go
	}
	c.pingSlot = -1
	p.count--
}

// fire pings the connections of the next slot, and sets the timer again
// while there are connections.
func (p *pinger) fire() {
	p.mu.Lock()
	p.cursor = (p.cursor + 1) % pingSlots
	due := p.due[:0] // this call's own: another fire may start before it ends
	p.due = nil
	for c := range p.slots[p.cursor] {
		due = append(due, c)
	}
	p.armed = p.count > 0
	if p.armed {
		p.timer.Reset(p.tick)
	}
	p.mu.Unlock()
	// Outside the lock: connections that open or close meanwhile wait
	// for nothing. A connection that ended meanwhile ignores the ping.
	for _, c := range due {
		c.ping()
	}
	clear(due)
	p.mu.Lock()
	if p.due == nil {
		p.due = due[:0]
	}
	p.mu.Unlock()
}
