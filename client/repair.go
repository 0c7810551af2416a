package client

import (
	"errors"
	"fmt"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// errDamagedRecord: the log no longer holds the bytes it indexed.
var errDamagedRecord = errors.New("a record in this journal's local log is damaged")

// damage is one blob whose bytes could not be read back from the log.
type damage struct {
	id  protocol.BlobID
	err error
}

// noteDamage records that blob s could not be read back from the log.
// Call with the lock held.
func (j *Journal) noteDamage(s *stored, err error) {
	j.damage = append(j.damage, damage{id: s.ID, err: fmt.Errorf("read %s: %w", s.Chain.String()[:ShortIDLen], err)})
}
