package store

import (
	"errors"
	"testing"
)

// TestMediaRecords: a pending mxc counts against its user's bound until
// it lapses or is uploaded; an upload marks its blob local; deleting a
// record keeps the blob's.
func TestMediaRecords(t *testing.T) {
	s := openTestStore(t, Options{})
	const srv, user = "s", "@u:s"
	pend := func(id string, expires, now int64) error {
		return s.Update(func(tx *Txn) error { return tx.PutPendingMedia(srv, id, user, 1, expires, now, 2) })
	}
	if err := pend("a", 100, 10); err != nil {
		t.Fatal(err)
	}
	if err := pend("b", 20, 10); err != nil {
		t.Fatal(err)
	}
	if err := pend("c", 100, 10); !errors.Is(err, ErrTooManyPending) {
		t.Fatalf("a third pending with a bound of 2: %v", err)
	}
	// At 30, b has lapsed: it no longer counts, and the sweep lists it.
	if err := pend("c", 100, 30); err != nil {
		t.Fatalf("pending after one lapsed: %v", err)
	}
	s.View(func(tx *Txn) error {
		lapsed, err := tx.LapsedPendingMedia(30, 10)
		if err != nil || len(lapsed) != 1 || lapsed[0].MediaID != "b" || lapsed[0].User != user {
			t.Errorf("lapsed %+v, %v", lapsed, err)
		}
		rec, err := tx.Media(srv, "a")
		if err != nil || !rec.Pending || rec.Expires != 100 || rec.Uploader != user {
			t.Errorf("pending record %+v, %v", rec, err)
		}
		return nil
	})

	// Uploading a ends its pending entry and marks the blob local.
	err := s.Update(func(tx *Txn) error {
		return tx.PutMedia(srv, "a", &MediaRecord{SHA256: "ff", Size: 3, Type: "text/plain", Created: 2, Uploader: user, Meta: []byte("{}")})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(tx *Txn) error { return tx.DeleteMedia(srv, "b") }); err != nil {
		t.Fatal(err)
	}
	if err := pend("d", 100, 30); err != nil {
		t.Fatalf("pending after one was uploaded and one deleted: %v", err)
	}
	s.View(func(tx *Txn) error {
		if _, err := tx.Media(srv, "b"); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted record: %v", err)
		}
		local, err := tx.LocalBlobs()
		if err != nil || len(local) != 1 || !local["ff"] {
			t.Errorf("local blobs %v, %v", local, err)
		}
		return nil
	})
	// The sweep removes lapsed pending mxcs, record and entry.
	var swept int
	if err := s.Update(func(tx *Txn) (err error) { swept, err = tx.SweepLapsedMedia(srv, 1000, 10); return err }); err != nil || swept != 2 {
		t.Fatalf("sweep at 1000: %d, %v; want c and d", swept, err)
	}
	s.View(func(tx *Txn) error {
		if _, err := tx.Media(srv, "c"); !errors.Is(err, ErrNotFound) {
			t.Errorf("swept record: %v", err)
		}
		if lapsed, _ := tx.LapsedPendingMedia(1000, 10); len(lapsed) != 0 {
			t.Errorf("after the sweep, lapsed %+v", lapsed)
		}
		if rec, err := tx.Media(srv, "a"); err != nil || rec.Pending {
			t.Errorf("the sweep touched an uploaded mxc: %+v, %v", rec, err)
		}
		return nil
	})
	if err := s.Update(func(tx *Txn) error { return tx.DeleteMedia(srv, "a") }); err != nil {
		t.Fatal(err)
	}
	s.View(func(tx *Txn) error {
		if local, _ := tx.LocalBlobs(); !local["ff"] {
			t.Error("deleting an mxc dropped its blob's record")
		}
		return nil
	})
}
