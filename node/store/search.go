package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"
)

// The search index: an inverted index of the text of a room's events,
// written in each event's own transaction (node/client/search.go decides
// what is indexed; node/internal/fulltext makes the terms).
//
//	fx/<term>\0<room8><order 8B>  -> fields, term count, doc length (3 bytes)
//	fxd/<room8><order 8B>         -> the doc: event ID, text source, its terms
//	fxn/<room8>                   -> docs and total length (BM25's N, avgdl)
//	ixv/<room>                    -> the room's reindex progress
//
// room8 is the first 8 bytes of SHA-256 of the room ID: keys stay short,
// and a collision costs a wrong candidate that the doc's check of its
// room drops. Postings are keyed by term first, so that a search over
// all of a user's rooms reads each term's postings in one scan, with
// one seek, however many rooms there are (by room first, a search over
// 1,000 rooms cost 1,000 seeks per term, most of its time); a room's
// postings are found through its docs, which list their terms.
//
// Bound: one posting per distinct term of an event (fulltext.MaxTerms),
// one doc and one small counter per room.

func searchRoom(room string) [8]byte {
	sum := sha256.Sum256([]byte(room))
	return [8]byte(sum[:8])
}

func prefixPostings(term string) []byte { return []byte("fx/" + term) }

func keyPosting(room, term string, order uint64) []byte {
	r := searchRoom(room)
	k := append(append(prefixPostings(term), 0), r[:]...)
	return binary.BigEndian.AppendUint64(k, order)
}

func prefixSearchDocs(room string) []byte {
	r := searchRoom(room)
	return append([]byte("fxd/"), r[:]...)
}

func keySearchDoc(room string, order uint64) []byte {
	return binary.BigEndian.AppendUint64(prefixSearchDocs(room), order)
}

func keySearchStats(room string) []byte {
	r := searchRoom(room)
	return append([]byte("fxn/"), r[:]...)
}

func keyIndexProgress(room string) []byte { return []byte("ixv/" + room) }

// The fields a term was found in (Posting.Fields).
const (
	FieldBody  uint8 = 1 // content.body (and a file's name)
	FieldName  uint8 = 2 // content.name
	FieldTopic uint8 = 4 // content.topic
)

// Posting is one term of one doc.
type Posting struct {
	Term   string
	Fields uint8 // FieldBody | FieldName | FieldTopic
	Count  uint8 // occurrences in the doc, at most 255
}

// SearchDoc is one event's entry in the index, at its timeline order.
type SearchDoc struct {
	EventID string
	// Source is the event whose text is indexed: the event itself, or
	// the edit (m.replace) whose new content replaced it; SourceTS is
	// its origin_server_ts (a later edit wins).
	Source   string
	SourceTS int64
	// Len is the text's length in tokens (at most 255).
	Len      uint8
	Postings []Posting
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func readString(b []byte) (string, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return "", nil, errors.New("short string")
	}
	return string(b[k : k+int(n)]), b[k+int(n):], nil
}

func appendSearchDoc(b []byte, d *SearchDoc) []byte {
	b = appendString(b, d.EventID)
	b = appendString(b, d.Source)
	b = binary.AppendVarint(b, d.SourceTS)
	b = append(b, d.Len)
	b = binary.AppendUvarint(b, uint64(len(d.Postings)))
	for _, p := range d.Postings {
		b = appendString(b, p.Term)
		b = append(b, p.Fields, p.Count)
	}
	return b
}

func decodeSearchDoc(b []byte) (*SearchDoc, error) {
	var d SearchDoc
	var err error
	if d.EventID, b, err = readString(b); err != nil {
		return nil, err
	}
	if d.Source, b, err = readString(b); err != nil {
		return nil, err
	}
	ts, k := binary.Varint(b)
	if k <= 0 || len(b) < k+1 {
		return nil, errors.New("short doc")
	}
	d.SourceTS, d.Len, b = ts, b[k], b[k+1:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, errors.New("short doc")
	}
	b = b[k:]
	d.Postings = make([]Posting, 0, n)
	for range n {
		var p Posting
		if p.Term, b, err = readString(b); err != nil {
			return nil, err
		}
		if len(b) < 2 {
			return nil, errors.New("short posting")
		}
		p.Fields, p.Count, b = b[0], b[1], b[2:]
		d.Postings = append(d.Postings, p)
	}
	return &d, nil
}

// SearchStats are a room's indexed docs and their total length.
type SearchStats struct {
	Docs, TotalLen uint64
}

// SearchStats reads a room's counts (zero for a room with none).
func (t *Txn) SearchStats(room string) (SearchStats, error) {
	b, err := get(t.txn, keySearchStats(room))
	if errors.Is(err, ErrNotFound) {
		return SearchStats{}, nil
	}
	if err != nil {
		return SearchStats{}, err
	}
	docs, k := binary.Uvarint(b)
	total, k2 := binary.Uvarint(b[max(k, 0):])
	if k <= 0 || k2 <= 0 {
		return SearchStats{}, fmt.Errorf("store: corrupt search stats of %s", room)
	}
	return SearchStats{docs, total}, nil
}

func (t *Txn) addSearchStats(room string, docs int64, length int64) error {
	st, err := t.SearchStats(room)
	if err != nil {
		return err
	}
	st.Docs = uint64(max(int64(st.Docs)+docs, 0))
	st.TotalLen = uint64(max(int64(st.TotalLen)+length, 0))
	b := binary.AppendUvarint(nil, st.Docs)
	return t.txn.Set(keySearchStats(room), binary.AppendUvarint(b, st.TotalLen))
}

// SearchDoc reads the doc at an order of a room; ErrNotFound if none.
func (t *Txn) SearchDoc(room string, order uint64) (*SearchDoc, error) {
	b, err := get(t.txn, keySearchDoc(room, order))
	if err != nil {
		return nil, err
	}
	d, err := decodeSearchDoc(b)
	if err != nil {
		return nil, fmt.Errorf("store: search doc %d of %s: %w", order, room, err)
	}
	return d, nil
}

// PutSearchDoc indexes a doc at an order of a room, replacing the one
// there (its postings are deleted first): writing the same doc again
// leaves the index as it was.
func (t *Txn) PutSearchDoc(room string, order uint64, d *SearchDoc) error {
	if err := t.DeleteSearchDoc(room, order); err != nil {
		return err
	}
	return t.PutNewSearchDoc(room, order, d)
}

// PutNewSearchDoc indexes a doc at an order that has none: an event
// placed in the timeline in this transaction. It saves PutSearchDoc's
// read of the doc there.
func (t *Txn) PutNewSearchDoc(room string, order uint64, d *SearchDoc) error {
	for _, p := range d.Postings {
		if err := t.txn.Set(keyPosting(room, p.Term, order), []byte{p.Fields, p.Count, d.Len}); err != nil {
			return err
		}
	}
	if err := t.txn.Set(keySearchDoc(room, order), appendSearchDoc(nil, d)); err != nil {
		return err
	}
	return t.addSearchStats(room, 1, int64(d.Len))
}

// DeleteSearchDoc removes the doc at an order of a room and its
// postings; nothing if there is none.
func (t *Txn) DeleteSearchDoc(room string, order uint64) error {
	old, err := t.SearchDoc(room, order)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, p := range old.Postings {
		if err := t.txn.Delete(keyPosting(room, p.Term, order)); err != nil {
			return err
		}
	}
	if err := t.txn.Delete(keySearchDoc(room, order)); err != nil {
		return err
	}
	return t.addSearchStats(room, -1, -int64(old.Len))
}

// PostingHit is one doc a term was found in.
type PostingHit struct {
	Term   string
	Room   [8]byte // the first 8 bytes of SHA-256 of the room ID (SearchRoomKey)
	Order  uint64
	Fields uint8
	Count  uint8
	Len    uint8 // the doc's length in tokens
}

// SearchRoomKey is how postings name a room (PostingHit.Room).
func SearchRoomKey(room string) [8]byte { return searchRoom(room) }

// Postings calls fn for the docs of every room that hold term (or, with
// prefix, any term that starts with it), in key order: term by term,
// room by room, oldest first; until fn returns false.
func (t *Txn) Postings(term string, prefix bool, fn func(PostingHit) bool) error {
	p := prefixPostings(term)
	if !prefix {
		p = append(p, 0)
	}
	txn, err := t.txn.open()
	if err != nil {
		return err
	}
	opts := badger.DefaultIteratorOptions
	opts.Prefix = p
	opts.PrefetchValues = false
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Seek(p); it.ValidForPrefix(p); it.Next() {
		item := it.Item()
		rest := item.Key()[len("fx/"):]
		sep := bytes.IndexByte(rest, 0)
		if sep < 0 || len(rest) != sep+17 {
			continue // not a posting of this form
		}
		h := PostingHit{Term: string(rest[:sep]), Room: [8]byte(rest[sep+1 : sep+9]), Order: binary.BigEndian.Uint64(rest[sep+9:])}
		if err := item.Value(func(v []byte) error {
			if len(v) == 3 {
				h.Fields, h.Count, h.Len = v[0], v[1], v[2]
			}
			return nil
		}); err != nil {
			return err
		}
		if h.Count == 0 {
			continue
		}
		if !fn(h) {
			return nil
		}
	}
	return nil
}

// Posting reads a term's posting of one doc; false if the doc does not
// hold the term.
func (t *Txn) Posting(room, term string, order uint64) (PostingHit, bool, error) {
	v, err := get(t.txn, keyPosting(room, term, order))
	if errors.Is(err, ErrNotFound) || (err == nil && len(v) != 3) {
		return PostingHit{}, false, nil
	}
	if err != nil {
		return PostingHit{}, false, err
	}
	return PostingHit{Term: term, Room: searchRoom(room), Order: order, Fields: v[0], Count: v[1], Len: v[2]}, v[1] > 0, nil
}

// DeleteSearchRoom removes up to limit keys of a room's index (docs and
// their postings, then its counts) and reports whether none is left.
func (t *Txn) DeleteSearchRoom(room string, limit int) (bool, error) {
	p := prefixSearchDocs(room)
	n := 0
	type doc struct {
		key   []byte
		order uint64
		terms []string
	}
	var docs []doc
	if err := t.scan(p, nil, false, func(k, v []byte) (bool, error) {
		d := doc{key: k, order: binary.BigEndian.Uint64(k[len(p):])}
		if sd, err := decodeSearchDoc(v); err == nil {
			for _, post := range sd.Postings {
				d.terms = append(d.terms, post.Term)
			}
		}
		docs = append(docs, d)
		n += 1 + len(d.terms)
		return n < limit, nil
	}); err != nil {
		return false, err
	}
	for _, d := range docs {
		for _, term := range d.terms {
			if err := t.txn.Delete(keyPosting(room, term, d.order)); err != nil {
				return false, err
			}
		}
		if err := t.txn.Delete(d.key); err != nil {
			return false, err
		}
	}
	if n >= limit {
		return false, nil
	}
	return true, t.txn.Delete(keySearchStats(room))
}

// IndexProgress is how far the reindex job (node/client/reindex.go) has
// walked a room's timeline for an index version.
type IndexProgress struct {
	Version int
	// Done: the whole timeline up to the version's start is indexed.
	Done bool
	// Below is the lowest timeline order walked so far (the walk goes
	// from the newest event down); 0 before the first batch.
	Below uint64
	// Upto is the order the walk started from: events above it were
	// indexed live.
	Upto uint64
}

// IndexProgress reads a room's reindex progress; nil if none.
func (t *Txn) IndexProgress(room string) (*IndexProgress, error) {
	var p IndexProgress
	err := t.getJSON(keyIndexProgress(room), &p)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// PutIndexProgress records a room's reindex progress.
func (t *Txn) PutIndexProgress(room string, p *IndexProgress) error {
	return t.setJSON(keyIndexProgress(room), p)
}

// DeleteIndexProgress forgets a room's reindex progress: the reindex job
// walks the room again at the next start.
func (t *Txn) DeleteIndexProgress(room string) error {
	return t.txn.Delete(keyIndexProgress(room))
}

// IsTooBig reports whether a write failed for being too big for one
// transaction: the caller may split it.
func IsTooBig(err error) bool { return errors.Is(err, badger.ErrTxnTooBig) }
