package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"unicode/utf8"

	"github.com/parley-p2p/parley/rooms"
)

// How an event record is kept on disk.
//
// Records written before this file existed are JSON objects (the
// EventRecord struct through encoding/json), which decoding had to scan
// twice over: once to check the whole record, PDU included, was valid
// JSON and once to copy the PDU out. Reading back a thousand rooms'
// timelines spent more time there than anywhere else. New records are
// binary instead: the PDU goes last and verbatim, so reading a record
// never looks at the PDU's bytes (rooms.ParseTrusted reads them next
// anyway). The two forms are told apart by their first byte: JSON
// records start with '{', binary ones with recordV1.
//
//	recordV1
//	uvarint  Pos
//	uvarint  Order
//	varint   Received
//	byte     flags (flagOutlier, flagPlain)
//	7 x (uvarint length, bytes): Version, Rejected, SoftFailed,
//	         StateAfter, StateBefore, TxnID, TxnDevice
//	only with flagPlain: uvarint length, bytes: Plain
//	the PDU, to the end of the value
//
// Records without a Plain are written exactly as before flagPlain
// existed, so every binary record an older node wrote reads as one
// without a Plain. (An older node refuses a record with flagPlain as
// damaged rather than misreading it.)
//
// JSON records stay readable (every data dir made before has only
// them), through a decoder for exactly the form encoding/json wrote;
// anything else in them goes to encoding/json as before.
const (
	recordV1    = 0x01
	flagOutlier = 1 << 0
	flagPlain   = 1 << 1
	knownFlags  = flagOutlier | flagPlain
)

// errBadRecord wraps every error of a damaged event record.
var errBadRecord = errors.New("store: damaged event record")

// appendEventRecord appends r's binary form to buf, growing it once.
func appendEventRecord(buf []byte, r *EventRecord) []byte {
	// At most: the format byte, three varints, the flags, and each
	// string's uvarint length (up to 3 bytes below 2 MiB) and bytes.
	n := 1 + 3*binary.MaxVarintLen64 + 1 + 8*binary.MaxVarintLen64 + len(r.PDU) + len(r.Plain) +
		len(r.Version) + len(r.Rejected) + len(r.SoftFailed) + len(r.StateAfter) + len(r.StateBefore) + len(r.TxnID) + len(r.TxnDevice)
	buf = slices.Grow(buf, n)
	buf = append(buf, recordV1)
	buf = binary.AppendUvarint(buf, r.Pos)
	buf = binary.AppendUvarint(buf, r.Order)
	buf = binary.AppendVarint(buf, r.Received)
	var flags byte
	if r.Outlier {
		flags |= flagOutlier
	}
	if len(r.Plain) > 0 {
		flags |= flagPlain
	}
	buf = append(buf, flags)
	for _, s := range [...]string{r.Version, r.Rejected, r.SoftFailed, r.StateAfter, r.StateBefore, r.TxnID, r.TxnDevice} {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	if len(r.Plain) > 0 {
		buf = binary.AppendUvarint(buf, uint64(len(r.Plain)))
		buf = append(buf, r.Plain...)
	}
	return append(buf, r.PDU...)
}

// decodeEventRecord reads a record in either form. The PDU it returns
// shares b's bytes.
func decodeEventRecord(b []byte, r *EventRecord) error {
	if len(b) == 0 {
		return fmt.Errorf("%w: empty", errBadRecord)
	}
	switch b[0] {
	case recordV1:
		return decodeBinaryRecord(b[1:], r)
	case '{':
		if decodeJSONRecord(b, r) {
			return nil
		}
		*r = EventRecord{}
		if err := json.Unmarshal(b, r); err != nil {
			return fmt.Errorf("%w: %w", errBadRecord, err)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown format byte %#x", errBadRecord, b[0])
}

func decodeBinaryRecord(b []byte, r *EventRecord) error {
	d := recordReader{b: b}
	r.Pos = d.uvarint()
	r.Order = d.uvarint()
	r.Received = d.varint()
	flags := d.byte()
	if flags&^knownFlags != 0 {
		d.fail("unknown flags")
	}
	r.Outlier = flags&flagOutlier != 0
	// The strings share one allocation.
	var spans [7][2]int
	total := 0
	for k := range spans {
		start, end := d.span("a string runs past the end")
		if d.err != nil {
			return d.err
		}
		spans[k] = [2]int{start, end}
		total += end - start
	}
	all := make([]byte, 0, total)
	for _, sp := range spans {
		all = append(all, b[sp[0]:sp[1]]...)
	}
	s := string(all)
	for k, dst := range [...]*string{&r.Version, &r.Rejected, &r.SoftFailed, &r.StateAfter, &r.StateBefore, &r.TxnID, &r.TxnDevice} {
		n := spans[k][1] - spans[k][0]
		*dst, s = s[:n], s[n:]
	}
	r.Version = internVersion(r.Version)
	if flags&flagPlain != 0 {
		start, end := d.span("a bad plain length")
		if d.err == nil && start == end {
			d.fail("a bad plain length")
		}
		if d.err != nil {
			return d.err
		}
		r.Plain = b[start:end:end]
	}
	r.PDU = b[d.at:len(b):len(b)]
	return nil
}

// recordReader reads a binary record, remembering its first error.
type recordReader struct {
	b   []byte
	at  int
	err error
}

func (d *recordReader) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s at byte %d", errBadRecord, what, d.at+1)
	}
}

func (d *recordReader) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.at:])
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.at += n
	return v
}

func (d *recordReader) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.at:])
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.at += n
	return v
}

// span reads a length and steps over that many bytes: where they are.
func (d *recordReader) span(what string) (start, end int) {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)-d.at) {
		d.fail(what)
	}
	if d.err != nil {
		return 0, 0
	}
	start = d.at
	d.at += int(n)
	return start, d.at
}

func (d *recordReader) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.at >= len(d.b) {
		d.fail("truncated")
		return 0
	}
	d.at++
	return d.b[d.at-1]
}

// internVersion spares an allocation per record for the versions in use.
func internVersion[S string | []byte](v S) string {
	switch string(v) {
	case "10":
		return "10"
	case "11":
		return "11"
	case "12":
		return "12"
	}
	return string(v)
}

// decodeJSONRecord reads a JSON record in the form encoding/json wrote
// it (compact, the EventRecord's keys, strings without escapes), finding
// the PDU's end without checking the PDU itself; it reports false for
// anything else, which the caller hands to encoding/json. For every
// record encoding/json wrote, its results are encoding/json's.
func decodeJSONRecord(b []byte, r *EventRecord) bool {
	*r = EventRecord{}
	p := jsonRecord{b: b, at: 1}
	if p.peek() == '}' {
		return p.at+1 == len(b)
	}
	for {
		key, ok := p.strBytes()
		if !ok || p.peek() != ':' {
			return false
		}
		p.at++
		switch string(key) { // compared without a copy
		case "v":
			var v []byte
			v, ok = p.strBytes()
			r.Version = internVersion(v)
		case "pdu":
			// Only its end is found here: a PDU is parsed in full when it
			// is read (rooms.ParseTrusted), so damage in it is an error
			// there. Deeper than rooms allows goes to encoding/json.
			if end := rooms.SkipCompact(b, p.at); end > p.at {
				r.PDU, p.at = b[p.at:end:end], end
			} else {
				ok = false
			}
		case "pos":
			r.Pos, ok = p.uint()
		case "ord":
			r.Order, ok = p.uint()
		case "rcv":
			r.Received, ok = p.int()
		case "out":
			r.Outlier, ok = p.bool()
		case "rej":
			r.Rejected, ok = p.str()
		case "soft":
			r.SoftFailed, ok = p.str()
		case "sa":
			r.StateAfter, ok = p.str()
		case "sb":
			r.StateBefore, ok = p.str()
		case "txn":
			r.TxnID, ok = p.str()
		case "txnd":
			r.TxnDevice, ok = p.str()
		default:
			return false
		}
		if !ok {
			return false
		}
		switch p.peek() {
		case ',':
			p.at++
		case '}':
			return p.at+1 == len(b)
		default:
			return false
		}
	}
}

// jsonRecord is decodeJSONRecord's position in the record.
type jsonRecord struct {
	b  []byte
	at int
}

func (p *jsonRecord) peek() byte {
	if p.at < len(p.b) {
		return p.b[p.at]
	}
	return 0
}

// str reads a string without escapes or control characters, of valid
// UTF-8 (encoding/json would decode anything else differently).
func (p *jsonRecord) str() (string, bool) {
	b, ok := p.strBytes()
	if !ok || len(b) == 0 {
		return "", ok
	}
	return string(b), true
}

// strBytes is str, sharing the record's bytes.
func (p *jsonRecord) strBytes() ([]byte, bool) {
	if p.peek() != '"' {
		return nil, false
	}
	start := p.at + 1
	ascii := true
	for i := start; i < len(p.b); i++ {
		switch c := p.b[i]; {
		case c == '"':
			s := p.b[start:i]
			if !ascii && !utf8.Valid(s) {
				return nil, false
			}
			p.at = i + 1
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

// uint reads a non-negative integer as encoding/json writes it.
func (p *jsonRecord) uint() (uint64, bool) {
	start := p.at
	var v uint64
	for p.at < len(p.b) && p.b[p.at] >= '0' && p.b[p.at] <= '9' {
		d := uint64(p.b[p.at] - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, false
		}
		v = v*10 + d
		p.at++
	}
	n := p.at - start
	return v, n > 0 && (n == 1 || p.b[start] != '0')
}

func (p *jsonRecord) int() (int64, bool) {
	neg := p.peek() == '-'
	if neg {
		p.at++
	}
	u, ok := p.uint()
	switch {
	case !ok:
		return 0, false
	case neg && u <= 1<<63:
		return -int64(u), true
	case !neg && u < 1<<63:
		return int64(u), true
	}
	return 0, false
}

func (p *jsonRecord) bool() (bool, bool) {
	rest := p.b[p.at:]
	switch {
	case len(rest) >= 4 && string(rest[:4]) == "true":
		p.at += 4
		return true, true
	case len(rest) >= 5 && string(rest[:5]) == "false":
		p.at += 5
		return false, true
	}
	return false, false
}
