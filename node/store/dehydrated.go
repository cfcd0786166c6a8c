package store

import "encoding/json"

func keyDehydrated(user string) []byte { return []byte("dhyd/" + user) }

// Dehydrated is a user's dehydrated device (MSC3814): its ID and the
// data, opaque to the node, its client stored with it.
type Dehydrated struct {
	DeviceID string          `json:"id"`
	Data     json.RawMessage `json:"data"`
	Created  int64           `json:"created"`
}

// Dehydrated loads the user's dehydrated device.
func (t *Txn) Dehydrated(user string) (*Dehydrated, error) {
	var d Dehydrated
	if err := t.getJSON(keyDehydrated(user), &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// PutDehydrated stores the user's dehydrated device.
func (t *Txn) PutDehydrated(user string, d *Dehydrated) error {
	return t.setJSON(keyDehydrated(user), d)
}

// DeleteDehydrated forgets the user's dehydrated device.
func (t *Txn) DeleteDehydrated(user string) error { return t.txn.Delete(keyDehydrated(user)) }
