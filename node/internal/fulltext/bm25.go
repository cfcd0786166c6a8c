package fulltext

import "math"

// BM25's constants: how fast a term's weight saturates with its count,
// and how much a long text is discounted.
const (
	k1 = 1.2
	b  = 0.75
)

// Corpus is what BM25 knows of the texts searched: how many there are
// and their total length in tokens.
type Corpus struct {
	Docs     uint64
	TotalLen uint64
}

// IDF is the weight of a term found in df of the corpus' texts; never
// negative, and 0 for an empty corpus.
func (c Corpus) IDF(df int) float64 {
	n := float64(max(c.Docs, uint64(df)))
	if n == 0 {
		return 0
	}
	return math.Log(1 + (n-float64(df)+0.5)/(float64(df)+0.5))
}

// Score is one term's BM25 contribution to a text of docLen tokens in
// which it occurs tf times, given its idf.
func (c Corpus) Score(idf float64, tf, docLen uint8) float64 {
	avg := 1.0
	if c.Docs > 0 && c.TotalLen > 0 {
		avg = float64(c.TotalLen) / float64(c.Docs)
	}
	f := float64(tf)
	return idf * f * (k1 + 1) / (f + k1*(1-b+b*float64(docLen)/avg))
}
