package store

import "bytes"

// The e2ee package keeps its records (inbound Megolm sessions, events
// waiting on a key, seen message indexes) under the prefix "e2/". Their
// layout is that package's: here they are opaque bytes.

func keyE2(key string) []byte { return []byte("e2/" + key) }

// E2Get loads an e2ee record; ErrNotFound when there is none.
func (t *Txn) E2Get(key string) ([]byte, error) { return get(t.txn, keyE2(key)) }

// E2Set stores an e2ee record.
func (t *Txn) E2Set(key string, val []byte) error { return t.txn.Set(keyE2(key), val) }

// E2Delete forgets an e2ee record; an absent one is no error.
func (t *Txn) E2Delete(key string) error { return t.txn.Delete(keyE2(key)) }

// E2Scan calls fn, in key order, for every e2ee record whose key starts
// with prefix (the key given to fn lacks the "e2/"); fn returns false to
// stop.
func (t *Txn) E2Scan(prefix string, fn func(key string, val []byte) bool) error {
	return t.scan(keyE2(prefix), nil, false, func(k, v []byte) (bool, error) {
		return fn(string(bytes.TrimPrefix(k, []byte("e2/"))), v), nil
	})
}
