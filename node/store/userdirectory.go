package store

import "encoding/json"

// Accounts calls fn for the local accounts in localpart order, at most
// limit of them (the user directory reads them).
func (t *Txn) Accounts(limit int, fn func(*Account) error) error {
	n := 0
	return t.scan([]byte("acct/"), nil, false, func(_, v []byte) (bool, error) {
		if n >= limit {
			return false, nil
		}
		n++
		var a Account
		if err := json.Unmarshal(v, &a); err != nil {
			return false, err
		}
		return true, fn(&a)
	})
}
