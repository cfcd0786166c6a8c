package fulltext

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTokens(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string
	}{
		{"words are split on anything that is not a letter or digit", "Hello, world! it's 2026", []string{"hello", "world", "it", "2026"}},
		{"accents are stripped and case folded", "Café CAFÉ naïve", []string{"cafe", "cafe", "naive"}},
		{"compatibility forms are unified", "ＡＢＣ ﬁne", []string{"abc", "fine"}},
		{"German sharp s folds to ss", "Straße", []string{"strasse"}},
		{"Japanese is indexed as overlapping pairs", "会議室で", []string{"会議", "議室", "室で"}},
		{"a lone CJK character is kept", "猫 cat", []string{"猫", "cat"}},
		{"CJK next to Latin splits the runs", "東京tower", []string{"東京", "tower"}},
		{"Hangul is paired", "안녕하세요", []string{"안녕", "녕하", "하세", "세요"}},
		{"kana voicing marks are kept", "が か", []string{"が", "か"}},
		{"single letters are dropped", "a b cd", []string{"cd"}},
		{"long tokens are cut", strings.Repeat("x", 40), []string{strings.Repeat("x", 32)}},
		{"Devanagari vowel signs stay in the word", "नमस्ते", []string{"नमस्ते"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Tokens(tt.text); !slices.Equal(got, tt.want) {
				t.Errorf("Tokens(%q) = %q; want %q", tt.text, got, tt.want)
			}
		})
	}
}

func TestAnalyzeBounds(t *testing.T) {
	var sb strings.Builder
	for i := range 500 {
		sb.WriteString(strings.Repeat(string(rune('a'+i%26)), 2+i/26))
		sb.WriteByte(' ')
	}
	d := Analyze(sb.String())
	if len(d.Terms) != MaxTerms {
		t.Errorf("%d distinct terms kept; want the first %d", len(d.Terms), MaxTerms)
	}
	if d.Len != 255 {
		t.Errorf("length %d; want it capped at 255", d.Len)
	}
	if !slices.IsSortedFunc(d.Terms, func(a, b Term) int { return strings.Compare(a.Text, b.Text) }) {
		t.Error("terms are not sorted")
	}
	long := strings.Repeat("ab ", MaxText) + "needle"
	for _, term := range Analyze(long).Terms {
		if term.Text == "needle" {
			t.Error("a word past MaxText was indexed")
		}
	}
	if d := Analyze("spam spam spam eggs"); d.Len != 4 || d.Terms[1] != (Term{"spam", 3}) {
		t.Errorf("Analyze counted %+v; want spam 3 times of 4 tokens", d)
	}
}

func TestParseQuery(t *testing.T) {
	tests := []struct {
		q    string
		want Query
	}{
		{"meet", Query{[]string{"meet"}, true}},
		{"meet ", Query{[]string{"meet"}, false}},
		{"Café meet meet", Query{[]string{"cafe", "meet"}, true}},
		{"会議", Query{[]string{"会議"}, true}},
		{"a", Query{}},
		{"", Query{}},
	}
	for _, tt := range tests {
		if got := ParseQuery(tt.q); !slices.Equal(got.Terms, tt.want.Terms) || got.Prefix != tt.want.Prefix {
			t.Errorf("ParseQuery(%q) = %+v; want %+v", tt.q, got, tt.want)
		}
	}
	if n := len(ParseQuery(strings.Repeat("word ", 5) + "aa bb cc dd ee ff gg hh ii jj kk ll mm nn oo pp qq rr").Terms); n != MaxQueryTerms {
		t.Errorf("%d query terms kept; want %d", n, MaxQueryTerms)
	}
}

func TestBM25(t *testing.T) {
	c := Corpus{Docs: 100, TotalLen: 1000}
	if c.IDF(1) <= c.IDF(50) {
		t.Error("a rare term does not weigh more than a common one")
	}
	if c.IDF(100) < 0 {
		t.Error("a term in every text weighs less than nothing")
	}
	idf := c.IDF(5)
	if c.Score(idf, 2, 10) <= c.Score(idf, 1, 10) {
		t.Error("two occurrences do not score above one")
	}
	if c.Score(idf, 1, 5) <= c.Score(idf, 1, 50) {
		t.Error("a short text does not score above a long one")
	}
	if (Corpus{}).IDF(0) != 0 {
		t.Error("an empty corpus gives a weight")
	}
}

// FuzzAnalyze: any input gives valid, bounded terms and never
// panics.
func FuzzAnalyze(f *testing.F) {
	for _, s := range []string{"Café au lait", "会議室で会いましょう", "안녕하세요", "\xff\xfe", "ﬁ ß İ ǅ", "a\u0301\u0301b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := Analyze(s)
		if len(d.Terms) > MaxTerms {
			t.Fatalf("%d terms", len(d.Terms))
		}
		for _, term := range d.Terms {
			if len(term.Text) == 0 || len(term.Text) > MaxTermBytes || !utf8.ValidString(term.Text) || strings.ContainsRune(term.Text, 0) || term.Count == 0 {
				t.Fatalf("bad term %q (%d) from %q", term.Text, term.Count, s)
			}
		}
		q := ParseQuery(s)
		if len(q.Terms) > MaxQueryTerms {
			t.Fatalf("%d query terms", len(q.Terms))
		}
	})
}

func BenchmarkAnalyze(b *testing.B) {
	for _, text := range []string{
		"Shall we meet for lunch at the new place near the station at noon?",
		"Ça marche, on se retrouve au café près de la gare à midi.",
		"明日の会議は十時からです。資料を持ってきてください。",
	} {
		b.Run(strings.Fields(text)[0], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Analyze(text)
			}
		})
	}
}
