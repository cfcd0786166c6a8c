package client

import (
	"context"
	"errors"
	"slices"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/node/media"
	"github.com/parley-p2p/parley/node/peers"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/webui"
)

// Media references: every mxc URI a shown event names in its (plain)
// content is recorded with the event (store.PutMediaRefs). A reference
// is what lets the room's members read the media and fetch it from each
// other (node/peers/media.go); a redaction that applies removes the
// references of its target, and the media worker then drops a cached
// remote copy nothing references any more.

// referMedia returns the write that records the media an event names,
// or, for a redaction, removes its target's references; nil if there is
// nothing to do.
func (api *API) referMedia(te *timelineEvent) func(*store.Txn, uint64) error {
	ev := te.Event
	if ev.Type() == "m.room.redaction" && ev.Redacts() != "" {
		target, redaction := ev.Redacts(), ev.ID()
		return func(t *store.Txn, _ uint64) error {
			red, err := t.Redaction(target)
			if err != nil || red == nil || red.RedactionID != redaction {
				return nil // does not apply (or not recorded): kept as it was
			}
			dropped, err := t.DropMediaRefs(target)
			if err == nil && len(dropped) > 0 {
				api.peers.MediaChanged()
			}
			return err
		}
	}
	mxcs := namedMedia(te.content(api))
	if len(mxcs) == 0 || api.dag.RedactedBy(ev) != nil {
		return nil
	}
	// History (a joiner's backfill) is not fetched ahead of need: only
	// what arrives live is, so a join does not pull a room's past media.
	room, id, live := te.Room.ID, ev.ID(), !te.How.Historic()
	return func(t *store.Txn, _ uint64) error {
		if err := t.PutMediaRefs(room, id, mxcs, live); err != nil {
			return err
		}
		if live {
			api.peers.MediaChanged()
		}
		return nil
	}
}

// namedMedia lists the valid mxc URIs a content names: its url (a file,
// image, video, audio message, a sticker, a room avatar), the encrypted
// attachment's and the thumbnails' URLs, and a member's avatar_url.
func namedMedia(c *timelineContent) []store.MediaID {
	uris := []string{c.URL, c.AvatarURL}
	if c.File != nil {
		uris = append(uris, c.File.URL)
	}
	if c.Info != nil {
		uris = append(uris, c.Info.ThumbnailURL)
		if c.Info.ThumbnailFile != nil {
			uris = append(uris, c.Info.ThumbnailFile.URL)
		}
	}
	var out []store.MediaID
	for _, u := range uris {
		if m, ok := store.ParseMXC(u); ok {
			out = append(out, m)
		}
	}
	return out
}

func init() {
	// The content repository's read rule for media a user did not
	// upload (media.go).
	mediaReferenced = func(api *API, user, server, mediaID string) bool {
		return api.MayReadMedia(user, server, mediaID)
	}
}

// maxMediaRooms bounds the rooms a fetch of one mxc looks through.
const maxMediaRooms = 16

// mediaRooms lists the rooms (at most maxMediaRooms) in which the user
// sees an event that references the mxc: a room they may read (joined,
// or up to their leave and not forgotten), at an event their history
// visibility shows them.
func (api *API) mediaRooms(user string, m store.MediaID) []string {
	type ref struct{ room, event string }
	var refs []ref
	scan := func() {
		_ = api.store.View(func(t *store.Txn) error {
			return t.MediaRefs(m, func(room, event string) (bool, error) {
				refs = append(refs, ref{room, event})
				return len(refs) < 16*maxMediaRooms, nil
			})
		})
	}
	if scan(); len(refs) == 0 {
		// A client may be shown an event whose plain view (and so its
		// references) is queued to be written: read after that write.
		api.store.Barrier()
		scan()
	}
	s := &webui.Session{UserID: user}
	var out []string
	for _, rf := range refs {
		if len(out) >= maxMediaRooms {
			break
		}
		if slices.Contains(out, rf.room) {
			continue
		}
		r, upTo, err := api.readableRoom(s, rf.room)
		if err != nil {
			continue
		}
		if _, _, err := api.visibleEvent(s, r, upTo, false, rf.event); err == nil {
			out = append(out, rf.room)
		}
	}
	return out
}

// sharedRooms lists the rooms (at most maxMediaRooms) the user is joined
// in where a user of server is joined too.
func (api *API) sharedRooms(user, server string) []string {
	var out []string
	for _, r := range api.peers.Rooms() {
		if len(out) >= maxMediaRooms {
			break
		}
		if api.peers.Membership(r, user) == "join" && slices.Contains(api.peers.RoomServers(r), server) {
			out = append(out, r.ID)
		}
	}
	return out
}

// MayReadMedia reports whether the user sees an event that references
// the mxc (the read rule for media the user did not upload).
func (api *API) MayReadMedia(user, server, mediaID string) bool {
	m, ok := store.ParseMXC("mxc://" + server + "/" + mediaID)
	return ok && len(api.mediaRooms(user, m)) > 0
}

// Fetch fetches a remote mxc for a local user from the members of the
// rooms in which the user sees a reference to it, and returns its blob's
// SHA-256 and metadata. Not found when the user sees no reference, or no
// member could give it.
func (api *API) Fetch(ctx context.Context, user, server, mediaID string) (string, *media.Meta, error) {
	notFound := errs.NotFoundf("no such media")
	m, ok := store.ParseMXC("mxc://" + server + "/" + mediaID)
	if !ok || api.peers == nil {
		return "", nil, notFound
	}
	rooms := api.mediaRooms(user, m)
	if len(rooms) == 0 {
		// An attachment the client encrypted itself is named only inside
		// events this node cannot read: ask through the rooms the user
		// shares with the mxc's server, whose node serves such an upload
		// (and nothing else unreferenced) when its uploader is in the room.
		rooms = api.sharedRooms(user, m.Server)
	}
	if len(rooms) == 0 {
		return "", nil, notFound
	}
	meta, err := api.peers.FetchMedia(ctx, rooms, server, mediaID)
	switch {
	case err == nil:
		return meta.SHA256, meta, nil
	case errors.Is(err, peers.ErrMediaBusy):
		return "", nil, errs.Unavailablef("too many media fetches under way: try again")
	case ctx.Err() != nil:
		return "", nil, ctx.Err()
	}
	api.log.Debug("remote media not fetched", "mxc", m.String(), "err", err)
	return "", nil, notFound
}
