// Package fulltext is the text side of the node's message search: it
// turns text into index terms (Analyze) and a search string into the
// terms to look up (ParseQuery), and scores a match (BM25). It is pure:
// no storage, no I/O, no knowledge of events or rooms. The index itself
// lives in node/store (search.go); what is indexed, and who may see a
// result, is node/client's to decide.
package fulltext
