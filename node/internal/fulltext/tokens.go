package fulltext

import (
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// The bounds of what one text may make the index hold.
const (
	// MaxText is how much of a text is read (bytes); the rest is not
	// indexed.
	MaxText = 16 << 10
	// MaxTerms is the most distinct terms kept of one text (the first
	// ones met).
	MaxTerms = 200
	// MinTermBytes and MaxTermBytes bound a term: shorter tokens (a
	// lone Latin letter or digit) are dropped, longer ones cut at a
	// rune boundary.
	MinTermBytes = 2
	MaxTermBytes = 32
	// MaxQueryTerms bounds the terms of one search.
	MaxQueryTerms = 16
)

// Term is a distinct term of a text and how often it occurs (at most
// 255).
type Term struct {
	Text  string
	Count uint8
}

// Doc is what a text gives the index: its distinct terms, sorted, and
// its length in tokens (at most 255, which is all BM25 needs to tell
// a short message from a long one).
type Doc struct {
	Terms []Term
	Len   uint8
}

// Analyze reads the first MaxText bytes of text into terms.
func Analyze(text string) Doc {
	counts := map[string]int{}
	var order []string
	n := 0
	eachToken(text, func(tok string) bool {
		n++
		if _, ok := counts[tok]; !ok {
			if len(order) == MaxTerms {
				return true // counted in the length, not kept
			}
			order = append(order, tok)
		}
		counts[tok]++
		return true
	})
	slices.Sort(order)
	d := Doc{Terms: make([]Term, len(order)), Len: uint8(min(n, 255))}
	for i, t := range order {
		d.Terms[i] = Term{Text: t, Count: uint8(min(counts[t], 255))}
	}
	return d
}

// Tokens lists the tokens of text in order, repeats included (for
// tests and highlighting).
func Tokens(text string) []string {
	var out []string
	eachToken(text, func(tok string) bool {
		out = append(out, tok)
		return true
	})
	return out
}

// Query is a search string as index terms: every term must match; the
// last one also matches as a prefix of longer terms when Prefix is set
// (the user may still be typing it).
type Query struct {
	Terms  []string
	Prefix bool
}

// ParseQuery reads a search string. The last term is a prefix unless
// the string ends in a separator (a space says the word is complete).
// Repeated terms count once; at most MaxQueryTerms are kept.
func ParseQuery(q string) Query {
	var out Query
	eachToken(q, func(tok string) bool {
		if !slices.Contains(out.Terms, tok) {
			out.Terms = append(out.Terms, tok)
		}
		return len(out.Terms) < MaxQueryTerms
	})
	if len(out.Terms) > 0 {
		r, _ := utf8.DecodeLastRuneInString(strings.TrimRight(q, "\x00"))
		out.Prefix = isWord(r) || isCJK(r)
	}
	return out
}

// fold is NFKC, case folding, then the removal of combining diacritics
// (café and cafe are one term). Only the diacritical blocks are
// stripped: marks that are letters' vowels or voicing in other scripts
// (Devanagari, Thai, the kana's dakuten) keep their meaning.
func fold(s string) string {
	if isPlainASCII(s) {
		return strings.ToLower(s)
	}
	t := folders.Get().(transform.Transformer)
	defer folders.Put(t)
	out, _, err := transform.String(t, s) // resets t first
	if err != nil {
		return strings.ToLower(s)
	}
	return out
}

// folders are fold's transformers, kept for reuse: a chain holds a
// buffer per stage, most of what a text's analysis would allocate.
var folders = sync.Pool{New: func() any {
	return transform.Chain(norm.NFKC, cases.Fold(), norm.NFD, runes.Remove(runes.Predicate(isDiacritic)), norm.NFC)
}}

func isPlainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func isDiacritic(r rune) bool {
	return (r >= 0x0300 && r <= 0x036F) || (r >= 0x1AB0 && r <= 0x1AFF) ||
		(r >= 0x1DC0 && r <= 0x1DFF) || (r >= 0x20D0 && r <= 0x20FF) || (r >= 0xFE20 && r <= 0xFE2F)
}

// isCJK: scripts written without spaces between words, indexed as
// overlapping pairs of characters (Hangul is spaced, but its syllables
// are short words, and pairs find them as well).
func isCJK(r rune) bool {
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul) || r == 'ー'
}

func isWord(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.IsMark(r)
}

// eachToken calls fn with each token of the first MaxText bytes of
// text, folded, until fn returns false.
func eachToken(text string, fn func(string) bool) {
	if len(text) > MaxText {
		cut := MaxText
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut]
	}
	text = fold(text)
	word := -1 // start of the current run of word characters
	var cjk []int
	flushWord := func(end int) bool {
		if word < 0 {
			return true
		}
		tok := text[word:end]
		word = -1
		if len(tok) < MinTermBytes {
			return true
		}
		return fn(cut(tok))
	}
	flushCJK := func(end int) bool {
		switch len(cjk) {
		case 0:
			return true
		case 1:
			ok := fn(text[cjk[0]:end])
			cjk = cjk[:0]
			return ok
		}
		cjk = append(cjk, end)
		for i := 0; i+2 < len(cjk); i++ {
			if !fn(text[cjk[i]:cjk[i+2]]) {
				cjk = cjk[:0]
				return false
			}
		}
		cjk = cjk[:0]
		return true
	}
	for i, r := range text {
		switch {
		case isCJK(r):
			if !flushWord(i) {
				return
			}
			cjk = append(cjk, i)
		case isWord(r) && r != utf8.RuneError:
			if len(cjk) > 0 && !unicode.IsMark(r) {
				if !flushCJK(i) {
					return
				}
			}
			if len(cjk) == 0 && word < 0 {
				word = i
			}
		default:
			if !flushWord(i) || !flushCJK(i) {
				return
			}
		}
	}
	if flushWord(len(text)) {
		flushCJK(len(text))
	}
}

// cut shortens a token to at most MaxTermBytes, at a rune boundary.
func cut(tok string) string {
	if len(tok) <= MaxTermBytes {
		return tok
	}
	n := MaxTermBytes
	for n > 0 && !utf8.RuneStart(tok[n]) {
		n--
	}
	return tok[:n]
}
