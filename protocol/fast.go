package protocol

import (
	"encoding/base64"
	"encoding/hex"
	"strconv"
)

// Fast paths for the two messages that carry blobs, Put and Blob, which
// are nearly all the bytes a relay and its clients exchange. Decoding
// them with encoding/json means scanning the base64 blob character by
// character twice (once for the envelope, once for the body); these scan
// the object once and decode the blob with encoding/base64 directly.
//
// They accept only the plain form that [Marshal] produces, give or take
// whitespace and field order: every field present at most once, spelled
// exactly, strings without escapes. For anything else they report false
// and the caller decodes with [Decode] and [DecodeAs], so that every
// error message and every edge case of the JSON rules stays encoding/json's.
// Whatever they accept, encoding/json decodes to the same value (the fuzz
// tests check this).

// FastPut decodes frame as a Put if it is in plain form and has a
// non-zero id. ok is false if it is not (it may still be a valid Put).
func FastPut(frame []byte) (m Put, ok bool) {
	var seen uint8
	ok = scanFlat(frame, func(key, val []byte, str bool) bool {
		switch string(key) {
		case "type":
			m.Type = TypePut
			return first(&seen, 1, str, true) && string(val) == TypePut
		case "id":
			return first(&seen, 2, str, false) && parseUint(&m.ID, val)
		case "journal":
			return first(&seen, 4, str, true) && decodeJournal(&m.Journal, val)
		case "blob":
			return first(&seen, 8, str, true) && decodeBase64(&m.Blob, val)
		}
		return false
	})
	return m, ok && seen == 15 && m.ID != 0
}

// FastBlob decodes frame as a Blob if it is in plain form. ok is false if
// it is not (it may still be a valid Blob).
func FastBlob(frame []byte) (m Blob, ok bool) {
	var seen uint8
	ok = scanFlat(frame, func(key, val []byte, str bool) bool {
		switch string(key) {
		case "type":
			m.Type = TypeBlob
			return first(&seen, 1, str, true) && string(val) == TypeBlob
		case "journal":
			return first(&seen, 2, str, true) && decodeJournal(&m.Journal, val)
		case "seq":
			return first(&seen, 4, str, false) && parseUint(&m.Seq, val)
		case "blob":
			return first(&seen, 8, str, true) && decodeBase64(&m.Blob, val)
		case "purged":
			return first(&seen, 16, str, false) && parseBool(&m.Purged, val)
		}
		return false
	})
	return m, ok && seen&15 == 15
}

// first records the field with the given bit in seen, and reports whether
// it is the field's first occurrence and its value is a string exactly
// when wantStr is set.
func first(seen *uint8, bit uint8, str, wantStr bool) bool {
	if str != wantStr || *seen&bit != 0 {
		return false
	}
	*seen |= bit
	return true
}

func decodeJournal(j *JournalID, val []byte) bool {
	if len(val) != 2*JournalIDSize {
		return false
	}
	_, err := hex.Decode(j[:], val)
	return err == nil
}

func decodeBase64(dst *[]byte, val []byte) bool {
	b := make([]byte, base64.StdEncoding.DecodedLen(len(val)))
	n, err := base64.StdEncoding.Decode(b, val)
	*dst = b[:n]
	return err == nil
}

// parseUint parses a JSON number that is a plain unsigned integer.
func parseUint(dst *uint64, val []byte) bool {
	if len(val) == 0 || len(val) > 1 && val[0] == '0' {
		return false
	}
	for _, c := range val {
		if c < '0' || c > '9' {
			return false
		}
	}
	n, err := strconv.ParseUint(string(val), 10, 64)
	*dst = n
	return err == nil
}

// parseBool parses the JSON literal true or false.
func parseBool(dst *bool, val []byte) bool {
	*dst = string(val) == "true"
	return *dst || string(val) == "false"
}

// scanFlat scans data as one JSON object whose values are strings
// without escapes or control characters, or bare literals (numbers,
// true, false), calling field for each member in order with the raw key
// and value (a string's without its quotes). It returns false as soon as
// field does, or if data is anything else, including trailing bytes.
func scanFlat(data []byte, field func(key, val []byte, str bool) bool) bool {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return skipSpace(data, i+1) == len(data)
	}
	for {
		key, j, ok := scanString(data, i)
		if !ok {
			return false
		}
		i = skipSpace(data, j)
		if i >= len(data) || data[i] != ':' {
			return false
		}
		i = skipSpace(data, i+1)
		if i >= len(data) {
			return false
		}
		var val []byte
		str := data[i] == '"'
		if str {
			if val, i, ok = scanString(data, i); !ok {
				return false
			}
		} else {
			j := i
			for j < len(data) && isLiteralByte(data[j]) {
				j++
			}
			if j == i {
				return false
			}
			val, i = data[i:j], j
		}
		if !field(key, val, str) {
			return false
		}
		i = skipSpace(data, i)
		if i >= len(data) {
			return false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return skipSpace(data, i+1) == len(data)
		default:
			return false
		}
	}
}

// scanString reads a string starting at data[i] == '"' and returns its
// contents and the index after the closing quote. Strings with escapes or
// control characters are refused.
func scanString(data []byte, i int) ([]byte, int, bool) {
	if i >= len(data) || data[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(data); j++ {
		switch c := data[j]; {
		case c == '"':
			return data[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

func isLiteralByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c == '-' || c == '+' || c == '.' || c >= 'A' && c <= 'Z'
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}
