package server

import (
	"bufio"
	"bytes"
	"testing"
)

// maskedFrame builds a client frame: final, opcode op, masked.
func maskedFrame(op byte, payload []byte) []byte {
	key := []byte{1, 2, 3, 4}
	f := []byte{0x80 | op, 0x80 | byte(len(payload))}
	f = append(f, key...)
	for i, b := range payload {
		f = append(f, b^key[i%4])
	}
	return f
}

func TestSkipPong(t *testing.T) {
	t.Parallel()
	text := maskedFrame(0x1, []byte(`{"type":"x"}`))
	for _, tc := range []struct {
		name  string
		input []byte
		skip  bool
	}{
		{"pong", append(maskedFrame(0xA, []byte("p")), text...), true},
		{"empty pong", maskedFrame(0xA, nil), true},
		{"ping", maskedFrame(0x9, []byte("p")), false},
		{"text", text, false},
		{"unmasked pong", []byte{0x8A, 0x01, 'p'}, false},
		{"pong with a reserved bit", append([]byte{0xCA}, maskedFrame(0xA, nil)[1:]...), false},
		{"fragment", append([]byte{0x0A}, maskedFrame(0xA, nil)[1:]...), false},
		{"truncated pong", maskedFrame(0xA, []byte("pong"))[:7], false},
	} {
		c := &conn{br: bufio.NewReaderSize(bytes.NewReader(tc.input), readBufferSize)}
		if got := c.skipPong(); got != tc.skip {
			t.Errorf("%s: skipped %v, want %v", tc.name, got, tc.skip)
			continue
		}
		rest, _ := c.br.Peek(c.br.Buffered())
		if tc.skip && len(tc.input) > len(text) && !bytes.Equal(rest, text) {
			t.Errorf("%s: left %x, want the text frame %x", tc.name, rest, text)
		}
		if !tc.skip && c.br.Buffered() != len(tc.input) {
			t.Errorf("%s: consumed bytes without skipping", tc.name)
		}
	}
}
