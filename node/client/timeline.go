package client

import (
	"encoding/json"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// OnTimeline is the engine's hook for an event placed in a room's
// timeline, live or as history, or for its plain view come late. Each
// record kept per shown event (notices, relations, the search index,
// media references) adds its write here, and all of them run in the
// event's own write: they are never behind the timeline, and a crash
// loses none of them. It is called under the room's lock, so none of
// them may take it or wait for a write.
func (api *API) OnTimeline(r *dag.Room, ev *rooms.Event, plain []byte, how dag.Arrival) func(*store.Txn, uint64) error {
	te := &timelineEvent{Room: r, Event: ev, Plain: plain, How: how}
	return allWrites(
		api.notice(te),
		api.relate(te),
		api.indexText(te),
		api.referMedia(te),
	)
}

// allWrites is one write doing each of ws that is not nil, in order; nil
// if none is.
func allWrites(ws ...func(*store.Txn, uint64) error) func(*store.Txn, uint64) error {
	n := 0
	for _, w := range ws {
		if w != nil {
			ws[n] = w
			n++
		}
	}
	switch ws = ws[:n]; n {
	case 0:
		return nil
	case 1:
		return ws[0]
	}
	return func(t *store.Txn, order uint64) error {
		for _, w := range ws {
			if err := w(t, order); err != nil {
				return err
			}
		}
		return nil
	}
}

// timelineEvent is one call of OnTimeline, with what its hooks read of
// the event decoded once between them.
type timelineEvent struct {
	Room  *dag.Room
	Event *rooms.Event
	Plain []byte
	How   dag.Arrival

	viewed bool
	view   shownEvent
	parsed bool
	body   timelineContent
}

// shown is the event as clients see it: its plain type and content when
// it has a plain view.
func (te *timelineEvent) shown(api *API) shownEvent {
	if !te.viewed {
		te.view = shownEvent{Skim: te.Event.Skim(), rec: &store.EventRecord{Plain: te.Plain}}
		api.view(&te.view)
		te.viewed = true
	}
	return te.view
}

// content is the fields of the shown content the hooks read; zero
// values for an event it does not decode (hidden, or not an object).
func (te *timelineEvent) content(api *API) *timelineContent {
	if !te.parsed {
		te.parsed = true
		if e := te.shown(api); !e.hidden && len(e.Content) > 0 {
			_ = json.Unmarshal(e.Content, &te.body) // a content that is not this shape reads as empty fields
		}
	}
	return &te.body
}

// timelineContent is what the timeline's hooks read of an event's
// content: its text, its media and its relation.
type timelineContent struct {
	MsgType   string `json:"msgtype"`
	Body      string `json:"body"`
	Name      string `json:"name"`
	Topic     string `json:"topic"`
	Filename  string `json:"filename"`
	URL       string `json:"url"`
	AvatarURL string `json:"avatar_url"`
	File      *struct {
		URL string `json:"url"`
	} `json:"file"`
	Info *struct {
		ThumbnailURL  string `json:"thumbnail_url"`
		ThumbnailFile *struct {
			URL string `json:"url"`
		} `json:"thumbnail_file"`
	} `json:"info"`
	RelatesTo *struct {
		RelType   string `json:"rel_type"`
		EventID   string `json:"event_id"`
		Key       string `json:"key"`
		InReplyTo *struct {
			EventID string `json:"event_id"`
		} `json:"m.in_reply_to"`
		IsFallingBack bool `json:"is_falling_back"`
	} `json:"m.relates_to"`
	NewContent *struct {
		MsgType string `json:"msgtype"`
		Body    string `json:"body"`
	} `json:"m.new_content"`
}
