package dag

import (
	"github.com/parley-p2p/parley/rooms"
)

// Byte budgets of the node's caches.
const (
	eventCacheBytes = 64 << 20
)

// Sizes as the caches count them: the bytes an entry keeps alive, roughly.
func eventSize(ev *rooms.Event) int { return 2*len(ev.JSON()) + 512 }

func (i *Info) size() int { return eventSize(i.Event) + 256 }
