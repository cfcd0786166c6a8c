package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
)

// Per-user data the node keeps for its own users: account data (global
// and per room, push rules among it), read receipts and pushers. Account
// data and receipts carry the stream position of their last change, with
// an index by position, so that an incremental /sync reads only what
// changed since its token.
//
//	ad/<user>\0<room>\0<type>       -> AccountData (room "" for global)
//	adp/<user>\0<pos>               -> <room>\0<type>
//	rcp/<room>\0<user>\0<type>\0<thread> -> Receipt
//	rcpp/<pos>                      -> the rcp/ key's suffix
//	psh/<user>\0<app id>\0<pushkey> -> the pusher's JSON
func prefixAccountData(user string) []byte { return []byte("ad/" + user + "\x00") }
func prefixAccountDataRoom(user, room string) []byte {
	return []byte("ad/" + user + "\x00" + room + "\x00")
}
func keyAccountData(user, room, typ string) []byte {
	return append(prefixAccountDataRoom(user, room), typ...)
}
func prefixAccountDataPos(user string) []byte { return []byte("adp/" + user + "\x00") }
func keyAccountDataPos(user string, pos uint64) []byte {
	return binary.BigEndian.AppendUint64(prefixAccountDataPos(user), pos)
}

func prefixReceipts(room string) []byte { return []byte("rcp/" + room + "\x00") }
func prefixUserReceipts(room, user string) []byte {
	return []byte("rcp/" + room + "\x00" + user + "\x00")
}
func receiptSuffix(room, user, typ, thread string) string {
	return room + "\x00" + user + "\x00" + typ + "\x00" + thread
}
func keyReceiptPos(pos uint64) []byte { return binary.BigEndian.AppendUint64([]byte("rcpp/"), pos) }

func prefixPushers(user string) []byte { return []byte("psh/" + user + "\x00") }
func keyPusher(user, app, pushkey string) []byte {
	return []byte("psh/" + user + "\x00" + app + "\x00" + pushkey)
}

// AccountData is one entry of a user's account data.
type AccountData struct {
	Room    string          `json:"room,omitempty"` // "" for global
	Type    string          `json:"type"`
	Content json.RawMessage `json:"content"`
	Pos     uint64          `json:"pos"`
}

// PutAccountData stores an entry, at a new stream position.
func (t *Txn) PutAccountData(user string, ad *AccountData) error {
	var old AccountData
	err := t.getJSON(keyAccountData(user, ad.Room, ad.Type), &old)
	switch {
	case err == nil:
		if err := t.txn.Delete(keyAccountDataPos(user, old.Pos)); err != nil {
			return err
		}
	case !errors.Is(err, ErrNotFound):
		return err
	}
	ad.Pos = t.NextPos()
	if err := t.txn.Set(keyAccountDataPos(user, ad.Pos), []byte(ad.Room+"\x00"+ad.Type)); err != nil {
		return err
	}
	return t.setJSON(keyAccountData(user, ad.Room, ad.Type), ad)
}

// AccountDataEntry loads one entry; ErrNotFound if unset.
func (t *Txn) AccountDataEntry(user, room, typ string) (*AccountData, error) {
	var ad AccountData
	if err := t.getJSON(keyAccountData(user, room, typ), &ad); err != nil {
		return nil, err
	}
	return &ad, nil
}

// CountAccountData counts the entries of one scope (room "" for global),
// reading keys only.
func (t *Txn) CountAccountData(user, room string) (int, error) {
	n := 0
	err := t.scan(prefixAccountDataRoom(user, room), nil, false, func(_, _ []byte) (bool, error) {
		n++
		return true, nil
	})
	return n, err
}

// AllAccountData lists every entry of a user's, global and per room.
func (t *Txn) AllAccountData(user string) ([]*AccountData, error) {
	var out []*AccountData
	err := t.scan(prefixAccountData(user), nil, false, func(_, v []byte) (bool, error) {
		var ad AccountData
		if err := json.Unmarshal(v, &ad); err != nil {
			return false, err
		}
		out = append(out, &ad)
		return true, nil
	})
	return out, err
}

// AccountDataSince lists the entries changed after stream position
// since, reading only those.
func (t *Txn) AccountDataSince(user string, since uint64) ([]*AccountData, error) {
	var out []*AccountData
	err := t.scan(prefixAccountDataPos(user), keyAccountDataPos(user, since+1), false, func(_, v []byte) (bool, error) {
		room, typ, _ := strings.Cut(string(v), "\x00")
		ad, err := t.AccountDataEntry(user, room, typ)
		if errors.Is(err, ErrNotFound) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		out = append(out, ad)
		return true, nil
	})
	return out, err
}

// Receipt is a user's read receipt in a room: of one type, for one
// thread ("" for an unthreaded receipt).
type Receipt struct {
	Room    string `json:"room"`
	User    string `json:"user"`
	Type    string `json:"type"`
	Thread  string `json:"thread,omitempty"`
	EventID string `json:"event"`
	TS      int64  `json:"ts"`
	Pos     uint64 `json:"pos"`
}

// PutReceipt stores a receipt, replacing the user's previous one of the
// same type and thread, at a new stream position.
func (t *Txn) PutReceipt(r *Receipt) error {
	suffix := receiptSuffix(r.Room, r.User, r.Type, r.Thread)
	old, err := t.Receipt(r.Room, r.User, r.Type, r.Thread)
	switch {
	case err == nil:
		if err := t.txn.Delete(keyReceiptPos(old.Pos)); err != nil {
			return err
		}
	case !errors.Is(err, ErrNotFound):
		return err
	}
	r.Pos = t.NextPos()
	if err := t.txn.Set(keyReceiptPos(r.Pos), []byte(suffix)); err != nil {
		return err
	}
	return t.setJSON([]byte("rcp/"+suffix), r)
}

// DeleteReceipt removes one receipt.
func (t *Txn) DeleteReceipt(room, user, typ, thread string) error {
	old, err := t.Receipt(room, user, typ, thread)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := t.txn.Delete(keyReceiptPos(old.Pos)); err != nil {
		return err
	}
	return t.txn.Delete([]byte("rcp/" + receiptSuffix(room, user, typ, thread)))
}

// Receipt loads one receipt; ErrNotFound if there is none.
func (t *Txn) Receipt(room, user, typ, thread string) (*Receipt, error) {
	var r Receipt
	if err := t.getJSON([]byte("rcp/"+receiptSuffix(room, user, typ, thread)), &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Receipts lists a room's receipts (user "" for everyone's, else one
// user's).
func (t *Txn) Receipts(room, user string) ([]*Receipt, error) {
	prefix := prefixReceipts(room)
	if user != "" {
		prefix = prefixUserReceipts(room, user)
	}
	var out []*Receipt
	err := t.scan(prefix, nil, false, func(_, v []byte) (bool, error) {
		var r Receipt
		if err := json.Unmarshal(v, &r); err != nil {
			return false, err
		}
		out = append(out, &r)
		return true, nil
	})
	return out, err
}

// ReceiptsSince lists the receipts of every room changed after stream
// position since, reading only those.
func (t *Txn) ReceiptsSince(since uint64) ([]*Receipt, error) {
	var out []*Receipt
	err := t.scan([]byte("rcpp/"), keyReceiptPos(since+1), false, func(_, v []byte) (bool, error) {
		var r Receipt
		err := t.getJSON([]byte("rcp/"+string(v)), &r)
		if errors.Is(err, ErrNotFound) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		out = append(out, &r)
		return true, nil
	})
	return out, err
}

// PutPusher stores a pusher's JSON under its app ID and pushkey.
func (t *Txn) PutPusher(user, app, pushkey string, p json.RawMessage) error {
	return t.txn.Set(keyPusher(user, app, pushkey), p)
}

// DeletePusher removes a pusher; removing none is no error.
func (t *Txn) DeletePusher(user, app, pushkey string) error {
	return t.txn.Delete(keyPusher(user, app, pushkey))
}

// Pushers lists a user's pushers.
func (t *Txn) Pushers(user string) ([]json.RawMessage, error) {
	var out []json.RawMessage
	err := t.scan(prefixPushers(user), nil, false, func(_, v []byte) (bool, error) {
		out = append(out, append(json.RawMessage(nil), v...))
		return true, nil
	})
	return out, err
}

// PusherUsers lists the users with a pusher of this app ID and pushkey.
func (t *Txn) PusherUsers(app, pushkey string) ([]string, error) {
	var out []string
	suffix := "\x00" + app + "\x00" + pushkey
	err := t.scan([]byte("psh/"), nil, false, func(k, _ []byte) (bool, error) {
		if s := string(k); strings.HasSuffix(s, suffix) {
			user, _, _ := strings.Cut(strings.TrimPrefix(s, "psh/"), "\x00")
			out = append(out, user)
		}
		return true, nil
	})
	return out, err
}
