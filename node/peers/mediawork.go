package peers

import (
	"context"
	"errors"
	"time"

	"github.com/parley-p2p/parley/node/store"
)

// The media worker acts on the mxcs whose references changed (the marks
// store.PutMediaRefs and DropMediaRefs leave, mw/): a remote mxc still
// referenced in a room this node is joined in is fetched ahead of need
// when it is small (prefetchable), so a picture can be seen while its
// sender's node is offline; one no event references any more loses its
// cached copy at once (a deleted picture vanishes from other nodes'
// caches, not just from the timeline). Local uploads are never removed.

const (
	// mediaWorkEvery is how often the worker looks at the marks without
	// being woken (to retry prefetches that failed).
	mediaWorkEvery = 30 * time.Second
	// maxMarksScanned bounds the marks one pass reads.
	maxMarksScanned = 1024
	// maxPrefetchTries bounds the attempts to prefetch one mxc; the
	// mark is dropped after the last (the media is still fetched on
	// demand).
	maxPrefetchTries = 5
	// maxRetries bounds the mxcs whose failed prefetch waits for a retry.
	maxRetries = 1024
	// prefetchQuotaPercent: prefetch only while the media store uses
	// less than this share of its quota.
	prefetchQuotaPercent = 80
)

// retry is a prefetch that failed: when to try again, and how often it
// failed.
type retry struct {
	at    time.Time
	tries int
}

// MediaChanged wakes the media worker: a write that changed references
// is under way. The worker waits for queued writes before it reads.
func (ps *Peers) MediaChanged() {
	if ps == nil || ps.media == nil {
		return
	}
	select {
	case ps.media.kick <- struct{}{}:
	default:
	}
}

// mediaWorker runs passes over the marks until ctx ends.
func (ps *Peers) mediaWorker(ctx context.Context) {
	ms := ps.media
	tick := time.NewTicker(mediaWorkEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ms.kick:
		case <-tick.C:
		}
		// The write that woke us may still be queued: read after it.
		ps.store.Barrier()
		ps.mediaPass(ctx)
	}
}

// mediaPass acts on the marks once.
func (ps *Peers) mediaPass(ctx context.Context) {
	ms := ps.media
	var marks []store.MediaID
	if err := ps.store.View(func(t *store.Txn) error {
		var err error
		marks, err = t.MediaWanted(maxMarksScanned)
		return err
	}); err != nil {
		return
	}
	now := time.Now()
	var done []store.MediaID
	defer func() { ps.doneMedia(done...) }()
	for _, m := range marks {
		if ctx.Err() != nil {
			return
		}
		if ms.waiting(m, now) || ms.fetching(m) {
			continue
		}
		rooms, referenced := ps.mediaRoomsHere(m)
		switch {
		case !referenced:
			ps.dropRemoteMedia(m)
		case m.Server == ps.serverName || ms.cfg.PrefetchMax < 0 || len(rooms) == 0:
			// Local, prefetch off, or no room to fetch through.
		default:
			if _, held := ps.heldMedia(m); held {
				break
			}
			if u := ms.cfg.Blobs.Usage(); u.Quota > 0 && u.Total*100 >= u.Quota*prefetchQuotaPercent {
				break
			}
			select {
			case ms.prefetch <- struct{}{}:
			default:
				return // both prefetch slots busy: the next pass goes on
			}
			ps.goBackground(func(ctx context.Context) {
				defer func() { <-ms.prefetch; ps.MediaChanged() }()
				ps.prefetchOne(ctx, rooms, m)
			})
			continue
		}
		done = append(done, m)
	}
}

// fetching reports whether a transfer of m is under way.
func (ms *mediaState) fetching(m store.MediaID) bool {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.fetches[m] != nil
}

// prefetchOne fetches an mxc ahead of need; the mark goes at the next
// pass once it is here, at once when the media is over the prefetch
// bounds, or after the last try; a failed try waits a while before the
// next.
func (ps *Peers) prefetchOne(ctx context.Context, rooms []string, m store.MediaID) {
	_, err := ps.fetchMedia(ctx, rooms, m, true)
	if ctx.Err() != nil {
		return
	}
	if err == nil {
		// The next pass removes the mark, or the copy if a redaction
		// came meanwhile.
		ps.media.forgetRetry(m)
		return
	}
	if errors.Is(err, errNotPrefetched) || ps.media.failed(m, time.Now()) {
		ps.media.forgetRetry(m)
		ps.doneMedia(m)
		return
	}
	ps.log.Debug("media prefetch failed", "mxc", m.String(), "err", err)
}

// failed counts a failed prefetch of m, which waits mediaWorkEvery per
// try before the next, and reports whether it was the last try.
func (ms *mediaState) failed(m store.MediaID, now time.Time) bool {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.retries == nil || len(ms.retries) >= maxRetries {
		ms.retries = map[store.MediaID]retry{}
	}
	r := ms.retries[m]
	r.tries++
	r.at = now.Add(time.Duration(r.tries) * mediaWorkEvery)
	ms.retries[m] = r
	return r.tries >= maxPrefetchTries
}

// waiting reports whether a failed prefetch of m waits before its next
// try.
func (ms *mediaState) waiting(m store.MediaID, now time.Time) bool {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	r, ok := ms.retries[m]
	return ok && now.Before(r.at)
}

func (ms *mediaState) forgetRetry(m store.MediaID) {
	ms.mu.Lock()
	delete(ms.retries, m)
	ms.mu.Unlock()
}

// doneMedia removes mxcs' marks, in one write.
func (ps *Peers) doneMedia(ms ...store.MediaID) {
	if len(ms) == 0 {
		return
	}
	err := ps.store.Update(func(t *store.Txn) error {
		for _, m := range ms {
			if err := t.DoneMedia(m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		ps.log.Debug("media marks not removed", "marks", len(ms), "err", err)
	}
}

// mediaRoomsHere lists the rooms this node is joined in that reference
// the mxc, and reports whether any event references it at all.
func (ps *Peers) mediaRoomsHere(m store.MediaID) (rooms []string, referenced bool) {
	const maxRooms = 16
	_ = ps.store.View(func(t *store.Txn) error {
		return t.MediaRefs(m, func(room, _ string) (bool, error) {
			referenced = true
			if len(rooms) > 0 && rooms[len(rooms)-1] == room {
				return true, nil
			}
			if r := ps.Room(room); r != nil && ps.serverJoined(r, ps.serverName) {
				rooms = append(rooms, room)
			}
			return len(rooms) < maxRooms, nil
		})
	})
	return rooms, referenced
}

// dropRemoteMedia removes the cached copy of a remote mxc no event
// references any more, and its record.
func (ps *Peers) dropRemoteMedia(m store.MediaID) {
	if m.Server == ps.serverName {
		return // a local original stays: its uploader may send it again
	}
	rec, ok := ps.mediaRecord(m)
	if !ok {
		return
	}
	blobs := ps.media.cfg.Blobs
	if blobs.IsLocal(rec.SHA256) {
		return // the same bytes were uploaded here too
	}
	if err := blobs.Remove(rec.SHA256); err != nil {
		ps.log.Warn("removing unreferenced remote media", "mxc", m.String(), "err", err)
		return
	}
	if err := ps.forgetMediaRecord(m); err != nil {
		ps.log.Warn("forgetting unreferenced remote media", "mxc", m.String(), "err", err)
	}
}
