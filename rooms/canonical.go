package rooms

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// Matrix canonical JSON (spec appendix "Canonical JSON", room versions 6+):
// UTF-8, no insignificant whitespace, object keys sorted by code point, integers
// only in [-(2^53)+1, 2^53-1], and strings escaping only '"', '\' and U+0000 to
// U+001F (with the short forms \b \t \n \f \r where they exist and lowercase
// \u00xx otherwise).
//
// encoding/json cannot produce it: it escapes <, >, & and U+2028/2029, decodes
// numbers into float64, keeps the last of duplicate keys and silently replaces
// invalid UTF-8. So this file has its own small parser into a value tree and an
// encoder for that tree; event.go reads PDU fields from the same tree.

const (
	maxSafeInt = 1<<53 - 1
	// maxDepth bounds nesting so hostile input cannot exhaust the stack. serde_json
	// (ruma, conduit) stops at 128 as well, so legitimate events never get close.
	maxDepth = 128
)

// ErrNotCanonical wraps every error CanonicalJSON returns.
var ErrNotCanonical = errors.New("not canonical JSON")

type kind uint8

const (
	kNull kind = iota
	kBool
	kNumber
	kString
	kArray
	kObject
)

// value is a parsed JSON value. Objects keep their members sorted by key and
// free of duplicates, so encoding is a straight walk.
type value struct {
	kind kind
	b    bool
	num  int64
	str  string
	arr  []value
	obj  []member
}

type member struct {
	key string
	val value
}

// get returns the member called key of an object value.
func (v value) get(key string) (value, bool) {
	if v.kind != kObject {
		return value{}, false
	}
	i, ok := slices.BinarySearchFunc(v.obj, key, func(m member, k string) int { return strings.Compare(m.key, k) })
	if !ok {
		return value{}, false
	}
	return v.obj[i].val, true
}

// getString returns the string member called key, if there is one.
func (v value) getString(key string) (string, bool) {
	m, ok := v.get(key)
	if !ok || m.kind != kString {
		return "", false
	}
	return m.str, true
}

// with returns a copy of object v with key set to val (added or replaced).
func (v value) with(key string, val value) value {
	out := value{kind: kObject, obj: make([]member, 0, len(v.obj)+1)}
	i, found := slices.BinarySearchFunc(v.obj, key, func(m member, k string) int { return strings.Compare(m.key, k) })
	out.obj = append(out.obj, v.obj[:i]...)
	out.obj = append(out.obj, member{key, val})
	if found {
		i++
	}
	out.obj = append(out.obj, v.obj[i:]...)
	return out
}

// without returns object v lacking the given keys: v itself when it has
// none of them (values are never changed in place, so sharing is safe).
func (v value) without(keys ...string) value {
	if !slices.ContainsFunc(v.obj, func(m member) bool { return slices.Contains(keys, m.key) }) {
		return v
	}
	out := value{kind: kObject, obj: make([]member, 0, len(v.obj))}
	for _, m := range v.obj {
		if !slices.Contains(keys, m.key) {
			out.obj = append(out.obj, m)
		}
	}
	return out
}

// only returns a copy of object v keeping just the given keys.
func (v value) only(keys ...string) value {
	out := value{kind: kObject, obj: make([]member, 0, len(keys))}
	for _, m := range v.obj {
		if slices.Contains(keys, m.key) {
			out.obj = append(out.obj, m)
		}
	}
	return out
}

func stringValue(s string) value { return value{kind: kString, str: s} }
func intValue(n int64) value     { return value{kind: kNumber, num: n} }
func emptyObject() value         { return value{kind: kObject, obj: []member{}} }

func stringsValue(ss []string) value {
	v := value{kind: kArray, arr: make([]value, len(ss))}
	for i, s := range ss {
		v.arr[i] = stringValue(s)
	}
	return v
}

// CanonicalJSON re-encodes JSON in Matrix canonical form. It rejects input that
// has no canonical form: non-integer numbers, integers outside ±(2^53-1),
// invalid UTF-8 (raw or as lone surrogate escapes), duplicate object keys,
// nesting deeper than 128, and anything after the value. Integers spelled with
// an exponent, a zero fraction or a minus zero (1e10, 2.0, -0) are re-encoded
// plainly, as the spec's appendix example requires.
func CanonicalJSON(in []byte) ([]byte, error) {
	v, err := parseJSON(in)
	if err != nil {
		return nil, fmt.Errorf("rooms: %w", err)
	}
	return v.encode(make([]byte, 0, len(in))), nil
}

// MarshalCanonical encodes v with encoding/json, then re-encodes the result in
// canonical form (so float fields that hold non-integers are rejected).
func MarshalCanonical(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("rooms: marshal canonical: %w", err)
	}
	return CanonicalJSON(b)
}

// parseJSON parses one JSON value that must fill in (surrounding whitespace aside).
func parseJSON(in []byte) (value, error) {
	v, _, err := parseJSONCanonical(in)
	return v, err
}

// parseJSONCanonical is parseJSON that also tells whether in is already
// the canonical JSON of the value; if so, canon is in as a string, which
// the value's strings share.
func parseJSONCanonical(in []byte) (v value, canon string, err error) {
	st := stacks.Get().(*parserStacks)
	defer st.release()
	p := parser{in: in, s: string(in), parserStacks: st}
	p.skipSpace()
	v, err = p.value(0)
	if err != nil {
		return value{}, "", err
	}
	p.skipSpace()
	if p.pos != len(p.in) {
		return value{}, "", p.fail("trailing data after the JSON value")
	}
	if p.reencode {
		return v, "", nil
	}
	return v, p.s, nil
}

// parser reads JSON into a value tree. Strings without escapes share one
// copy of the input (s) instead of having a copy each, and the members of
// objects and arrays gather on a stack reused for the whole document, so
// each object or array costs one allocation of its exact size.
type parser struct {
	in  []byte
	s   string // in, copied once
	pos int
	*parserStacks
	// reencode is set once the input is seen not to be canonical
	// (whitespace, keys out of order, a number or an escape written
	// differently than the encoder would).
	reencode bool
}

// parserStacks are a parser's working space, pooled across parses.
type parserStacks struct {
	members []member // objects being read, innermost last
	elems   []value  // arrays being read, innermost last
	scratch []byte   // re-encoding of an escaped string
}

var stacks = sync.Pool{New: func() any { return new(parserStacks) }}

// release returns the stacks to the pool, holding no strings of the last
// document, unless a huge document grew them.
func (st *parserStacks) release() {
	if cap(st.members) > 4096 || cap(st.elems) > 4096 || cap(st.scratch) > 1<<16 {
		return
	}
	clear(st.members[:cap(st.members)])
	clear(st.elems[:cap(st.elems)])
	st.members, st.elems, st.scratch = st.members[:0], st.elems[:0], st.scratch[:0]
	stacks.Put(st)
}

func (p *parser) fail(format string, args ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", ErrNotCanonical, p.pos, fmt.Sprintf(format, args...))
}

func (p *parser) skipSpace() {
	for p.pos < len(p.in) {
		switch p.in[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
			p.reencode = true
		default:
			return
		}
	}
}

func (p *parser) value(depth int) (value, error) {
	if depth > maxDepth {
		return value{}, p.fail("nested deeper than %d", maxDepth)
	}
	if p.pos >= len(p.in) {
		return value{}, p.fail("unexpected end of input")
	}
	switch c := p.in[p.pos]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		s, err := p.string()
		return value{kind: kString, str: s}, err
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case p.literal("true"):
		return value{kind: kBool, b: true}, nil
	case p.literal("false"):
		return value{kind: kBool}, nil
	case p.literal("null"):
		return value{kind: kNull}, nil
	default:
		return value{}, p.fail("unexpected character %q", c)
	}
}

func (p *parser) literal(word string) bool {
	if strings.HasPrefix(string(p.in[p.pos:min(len(p.in), p.pos+len(word))]), word) {
		p.pos += len(word)
		return true
	}
	return false
}

func (p *parser) object(depth int) (value, error) {
	p.pos++ // '{'
	p.skipSpace()
	if p.pos < len(p.in) && p.in[p.pos] == '}' {
		p.pos++
		return value{kind: kObject, obj: []member{}}, nil
	}
	base := len(p.members)
	defer func() { p.members = p.members[:base] }()
	for {
		p.skipSpace()
		if p.pos >= len(p.in) || p.in[p.pos] != '"' {
			return value{}, p.fail("expected an object key")
		}
		key, err := p.string()
		if err != nil {
			return value{}, err
		}
		p.skipSpace()
		if p.pos >= len(p.in) || p.in[p.pos] != ':' {
			return value{}, p.fail("expected ':' after object key")
		}
		p.pos++
		p.skipSpace()
		val, err := p.value(depth + 1)
		if err != nil {
			return value{}, err
		}
		p.members = append(p.members, member{key, val})
		p.skipSpace()
		if p.pos >= len(p.in) {
			return value{}, p.fail("unterminated object")
		}
		if p.in[p.pos] == '}' {
			p.pos++
			break
		}
		if p.in[p.pos] != ',' {
			return value{}, p.fail("expected ',' or '}' in object")
		}
		p.pos++
	}
	// Byte order of UTF-8 is code point order, which is what the spec sorts by.
	obj := p.members[base:]
	byKey := func(a, b member) int { return strings.Compare(a.key, b.key) }
	if !slices.IsSortedFunc(obj, byKey) {
		p.reencode = true
		slices.SortStableFunc(obj, byKey)
	}
	for i := 1; i < len(obj); i++ {
		if obj[i].key == obj[i-1].key {
			return value{}, p.fail("duplicate object key %q", obj[i].key)
		}
	}
	return value{kind: kObject, obj: slices.Clone(obj)}, nil
}

func (p *parser) array(depth int) (value, error) {
	p.pos++ // '['
	p.skipSpace()
	if p.pos < len(p.in) && p.in[p.pos] == ']' {
		p.pos++
		return value{kind: kArray, arr: []value{}}, nil
	}
	base := len(p.elems)
	defer func() { p.elems = p.elems[:base] }()
	for {
		p.skipSpace()
		elem, err := p.value(depth + 1)
		if err != nil {
			return value{}, err
		}
		p.elems = append(p.elems, elem)
		p.skipSpace()
		if p.pos >= len(p.in) {
			return value{}, p.fail("unterminated array")
		}
		if p.in[p.pos] == ']' {
			p.pos++
			return value{kind: kArray, arr: slices.Clone(p.elems[base:])}, nil
		}
		if p.in[p.pos] != ',' {
			return value{}, p.fail("expected ',' or ']' in array")
		}
		p.pos++
	}
}

// number parses a JSON number. Canonical JSON has only integers, written
// plainly; the spec's appendix example turns {"a":-0,"b":1e10} into
// {"a":0,"b":10000000000}, so a number written with a fraction or an exponent
// is accepted when its exact value is an integer in range, and re-encoded
// plainly. Numbers with a non-zero fractional part are rejected.
func (p *parser) number() (value, error) {
	start := p.pos
	neg := p.in[p.pos] == '-'
	if neg {
		p.pos++
	}
	intStart := p.pos
	p.digits()
	intPart := string(p.in[intStart:p.pos])
	switch {
	case intPart == "":
		return value{}, p.fail("number without digits")
	case len(intPart) > 1 && intPart[0] == '0':
		return value{}, p.fail("number %s has a leading zero", p.in[start:p.pos])
	}
	var frac string
	if p.pos < len(p.in) && p.in[p.pos] == '.' {
		p.pos++
		fracStart := p.pos
		p.digits()
		if frac = string(p.in[fracStart:p.pos]); frac == "" {
			return value{}, p.fail("number without digits after '.'")
		}
	}
	exp := int64(0)
	expOK := true
	if p.pos < len(p.in) && (p.in[p.pos] == 'e' || p.in[p.pos] == 'E') {
		p.pos++
		expStart := p.pos
		if p.pos < len(p.in) && (p.in[p.pos] == '+' || p.in[p.pos] == '-') {
			p.pos++
		}
		digitsStart := p.pos
		p.digits()
		if p.pos == digitsStart {
			return value{}, p.fail("number without digits in its exponent")
		}
		var err error
		exp, err = strconv.ParseInt(string(p.in[expStart:p.pos]), 10, 32)
		expOK = err == nil
	}
	text := p.in[start:p.pos]
	if p.pos-start != len(intPart)+boolInt(neg) {
		p.reencode = true // a fraction or an exponent: written plainly
	}

	// The value is mantissa × 10^exp10, mantissa being all the digits.
	mantissa := strings.TrimLeft(intPart+frac, "0")
	if mantissa == "" {
		p.reencode = p.reencode || neg   // -0 is written 0
		return value{kind: kNumber}, nil // any spelling of zero, -0 included
	}
	if !expOK {
		return value{}, p.fail("number %s is out of range", text)
	}
	exp10 := exp - int64(len(frac))
	for exp10 < 0 && strings.HasSuffix(mantissa, "0") {
		mantissa = mantissa[:len(mantissa)-1]
		exp10++
	}
	if exp10 < 0 {
		return value{}, p.fail("number %s is not an integer", text)
	}
	// 2^53-1 has 16 digits: anything longer is out of range.
	if int64(len(mantissa))+exp10 > 16 {
		return value{}, p.fail("number %s is outside ±(2^53-1)", text)
	}
	n, _ := strconv.ParseInt(mantissa+strings.Repeat("0", int(exp10)), 10, 64)
	if n > maxSafeInt {
		return value{}, p.fail("number %s is outside ±(2^53-1)", text)
	}
	if neg {
		n = -n
	}
	return value{kind: kNumber, num: n}, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (p *parser) digits() {
	for p.pos < len(p.in) && p.in[p.pos] >= '0' && p.in[p.pos] <= '9' {
		p.pos++
	}
}

// string decodes a JSON string starting at the opening quote. A string
// with no escapes is a slice of p.s.
func (p *parser) string() (string, error) {
	p.pos++ // opening quote
	start := p.pos
	for p.pos < len(p.in) {
		c := p.in[p.pos]
		if c == '\\' || c < 0x20 {
			break
		}
		if c == '"' {
			if !utf8.Valid(p.in[start:p.pos]) {
				return "", p.fail("invalid UTF-8 in string")
			}
			p.pos++
			return p.s[start : p.pos-1], nil
		}
		p.pos++
	}
	p.pos = start
	s, err := p.escapedString()
	if err == nil && !p.reencode {
		// Canonical only if the encoder would write the same escapes.
		p.scratch = appendString(p.scratch[:0], s)
		p.reencode = string(p.scratch) != p.s[start-1:p.pos]
	}
	return s, err
}

// escapedString decodes the rest of a string with escapes, from just after
// its opening quote.
func (p *parser) escapedString() (string, error) {
	var sb strings.Builder
	for {
		// Copy the run of bytes that need no decoding in one go.
		start := p.pos
		for p.pos < len(p.in) {
			c := p.in[p.pos]
			if c == '"' || c == '\\' || c < 0x20 {
				break
			}
			p.pos++
		}
		run := p.in[start:p.pos]
		if !utf8.Valid(run) {
			return "", p.fail("invalid UTF-8 in string")
		}
		sb.Write(run)
		if p.pos >= len(p.in) {
			return "", p.fail("unterminated string")
		}
		switch c := p.in[p.pos]; {
		case c == '"':
			p.pos++
			return sb.String(), nil
		case c < 0x20:
			return "", p.fail("unescaped control character 0x%02x in string", c)
		}
		// A backslash escape.
		p.pos++
		if p.pos >= len(p.in) {
			return "", p.fail("unterminated escape")
		}
		esc := p.in[p.pos]
		p.pos++
		switch esc {
		case '"', '\\', '/':
			sb.WriteByte(esc)
		case 'b':
			sb.WriteByte('\b')
		case 'f':
			sb.WriteByte('\f')
		case 'n':
			sb.WriteByte('\n')
		case 'r':
			sb.WriteByte('\r')
		case 't':
			sb.WriteByte('\t')
		case 'u':
			r, err := p.unicodeEscape()
			if err != nil {
				return "", err
			}
			sb.WriteRune(r)
		default:
			return "", p.fail("invalid escape \\%c", esc)
		}
	}
}

// unicodeEscape decodes the XXXX of \uXXXX (already past the 'u'), joining a
// surrogate pair. Lone surrogates have no UTF-8 form and are rejected.
func (p *parser) unicodeEscape() (rune, error) {
	r1, err := p.hex4()
	if err != nil {
		return 0, err
	}
	if !utf16.IsSurrogate(r1) {
		return r1, nil
	}
	if r1 >= 0xdc00 || p.pos+2 > len(p.in) || p.in[p.pos] != '\\' || p.in[p.pos+1] != 'u' {
		return 0, p.fail("lone surrogate \\u%04x", r1)
	}
	p.pos += 2
	r2, err := p.hex4()
	if err != nil {
		return 0, err
	}
	r := utf16.DecodeRune(r1, r2)
	if r == utf8.RuneError {
		return 0, p.fail("invalid surrogate pair \\u%04x\\u%04x", r1, r2)
	}
	return r, nil
}

func (p *parser) hex4() (rune, error) {
	if p.pos+4 > len(p.in) {
		return 0, p.fail("short \\u escape")
	}
	n, err := strconv.ParseUint(string(p.in[p.pos:p.pos+4]), 16, 32)
	if err != nil {
		return 0, p.fail("invalid \\u escape %q", p.in[p.pos:p.pos+4])
	}
	p.pos += 4
	return rune(n), nil
}

// encode appends the canonical JSON of v to buf.
func (v value) encode(buf []byte) []byte {
	switch v.kind {
	case kNull:
		return append(buf, "null"...)
	case kBool:
		return strconv.AppendBool(buf, v.b)
	case kNumber:
		return strconv.AppendInt(buf, v.num, 10)
	case kString:
		return appendString(buf, v.str)
	case kArray:
		buf = append(buf, '[')
		for i, e := range v.arr {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = e.encode(buf)
		}
		return append(buf, ']')
	default:
		buf = append(buf, '{')
		for i, m := range v.obj {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendString(buf, m.key)
			buf = append(buf, ':')
			buf = m.val.encode(buf)
		}
		return append(buf, '}')
	}
}

// bytes returns the canonical JSON of v.
func (v value) bytes() []byte { return v.encode(make([]byte, 0, v.encodedLen())) }

// encodedLen is the length of v's canonical JSON.
func (v value) encodedLen() int {
	switch v.kind {
	case kNull:
		return 4
	case kBool:
		if v.b {
			return 4
		}
		return 5
	case kNumber:
		n, x := 1, v.num
		if x < 0 {
			n, x = 2, -x
		}
		for ; x >= 10; x /= 10 {
			n++
		}
		return n
	case kString:
		return stringLen(v.str)
	case kArray:
		n := 2 + max(len(v.arr)-1, 0)
		for _, e := range v.arr {
			n += e.encodedLen()
		}
		return n
	default:
		n := 2 + max(len(v.obj)-1, 0)
		for _, m := range v.obj {
			n += stringLen(m.key) + 1 + m.val.encodedLen()
		}
		return n
	}
}

// stringLen is the length of appendString's encoding of s.
func stringLen(s string) int {
	n := len(s) + 2
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\' || c == '\b' || c == '\t' || c == '\n' || c == '\f' || c == '\r':
			n++
		case c < 0x20:
			n += 5
		}
	}
	return n
}

// encodeBufs keeps buffers for canonical JSON that is hashed and dropped.
var encodeBufs = sync.Pool{New: func() any { return new([]byte) }}

// hashCanonical is the SHA-256 of v's canonical JSON, encoded into a
// pooled buffer.
func hashCanonical(v value) [sha256.Size]byte {
	bp := encodeBufs.Get().(*[]byte)
	b := v.encode((*bp)[:0])
	sum := sha256.Sum256(b)
	if cap(b) <= 2*MaxEventSize {
		*bp = b
		encodeBufs.Put(bp)
	}
	return sum
}

const hexDigits = "0123456789abcdef"

func appendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			buf = append(buf, '\\', c)
		case c >= 0x20:
			buf = append(buf, c)
		case c == '\b':
			buf = append(buf, '\\', 'b')
		case c == '\t':
			buf = append(buf, '\\', 't')
		case c == '\n':
			buf = append(buf, '\\', 'n')
		case c == '\f':
			buf = append(buf, '\\', 'f')
		case c == '\r':
			buf = append(buf, '\\', 'r')
		default:
			buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
	}
	return append(buf, '"')
}

// memberSpan is where the value of obj's member key lies in obj's
// canonical JSON: from the members before it, whose encoded lengths
// add up to its offset, without encoding anything. obj must have the
// member.
func memberSpan(obj value, key string) (start, end int) {
	at := 1 // '{'
	for _, m := range obj.obj {
		at += stringLen(m.key) + 1 // "key":
		n := m.val.encodedLen()
		if m.key == key {
			return at, at + n
		}
		at += n + 1 // value,
	}
	panic("rooms: memberSpan of a missing member " + key)
}
