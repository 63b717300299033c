package ubihooks

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"strings"
	"sync"
	"time"
)

// uuid is the 16 bytes of a UUID (RFC 9562).
type uuid [16]byte

func (u uuid) String() string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

// parseUUID reads a UUID in any of its usual spellings: "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
// the same in braces or after "urn:uuid:", or 32 hex digits.
func parseUUID(s string) (uuid, bool) {
	var u uuid
	switch len(s) {
	case 36 + 9:
		if !strings.EqualFold(s[:9], "urn:uuid:") {
			return u, false
		}
		s = s[9:]
	case 36 + 2:
		if s[0] != '{' || s[37] != '}' {
			return u, false
		}
		s = s[1:37]
	case 32:
		_, err := hex.Decode(u[:], []byte(s))
		return u, err == nil
	}
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, false
	}
	h := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	_, err := hex.Decode(u[:], []byte(h))
	return u, err == nil
}

// idClock makes NewID monotonic within a process: ids minted in the same millisecond count
// up in their 12 sub-millisecond bits instead of being random there.
var idClock struct {
	sync.Mutex
	ms  int64
	seq uint16
}

// NewID returns a new time-ordered UUID (version 7): 48 bits of Unix milliseconds, then
// a counter and random bits. Time order keeps inserts local in indexes; callers assign
// every ID the store keeps.
func NewID() string {
	ms := time.Now().UnixMilli()
	idClock.Lock()
	if ms <= idClock.ms {
		idClock.seq++
		if idClock.seq > 0xfff { // 4096 ids in one millisecond: borrow the next one
			idClock.ms++
			idClock.seq = 0
		}
		ms = idClock.ms
	} else {
		idClock.ms, idClock.seq = ms, 0
	}
	seq := idClock.seq
	idClock.Unlock()

	var u uuid
	_, _ = rand.Read(u[8:]) // crypto/rand.Read never fails (it crashes the program instead)
	u[0], u[1], u[2], u[3], u[4], u[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	u[6] = 0x70 | byte(seq>>8)
	u[7] = byte(seq)
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return u.String()
}

// NameID returns the name-based (version 5, SHA-1) UUID of name in namespace, for ids
// derived from other ids (the same inputs always give the same id). It panics when
// namespace is not a UUID: namespaces are constants.
func NameID(namespace, name string) string {
	ns, ok := parseUUID(namespace)
	if !ok {
		panic("ubihooks: NameID: namespace " + namespace + " is not a UUID")
	}
	return nameUUID(ns, name).String()
}

func nameUUID(ns uuid, name string) uuid {
	h := sha1.New()
	h.Write(ns[:])
	h.Write([]byte(name))
	var id uuid
	copy(id[:], h.Sum(nil))
	id[6] = id[6]&0x0f | 0x50 // version 5
	id[8] = id[8]&0x3f | 0x80 // RFC 9562 variant
	return id
}

// eventNamespace derives event IDs (a name-based UUID namespace of the project's own).
var eventNamespace = uuid{0x6f, 0x1c, 0x2a, 0x8e, 0x5d, 0x0b, 0x4c, 0x7e, 0x9a, 0x53, 0x1f, 0x0e, 0x8b, 0x6d, 0x2c, 0x41}

// EventID returns the stable ID of the event of type t of a request: a name-based
// (version 5, SHA-1) UUID of (request, event type), so a transition that is recorded
// twice (a retry, a rescued lease, another replica) is one event. When the request id is
// a time-ordered (version 7) UUID, the event id keeps its 48-bit timestamp prefix, so
// that events inserted together sit together in the events index (random ids would dirty
// a random index page per insert); the other 74 bits stay a hash of (request, event type).
func EventID(requestID string, t EventType) string {
	id := nameUUID(eventNamespace, requestID+"/"+string(t))
	if r, ok := parseUUID(requestID); ok && r[6]>>4 == 7 {
		copy(id[:6], r[:6])
	}
	return id.String()
}
