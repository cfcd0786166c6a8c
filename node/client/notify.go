package client

import (
	"sync"

	"github.com/parley-p2p/parley/node/dag"
)

// notifier wakes the /sync long-polls of the users whose view changed:
// the local members of a room that has a new event, the user an invite
// is for. Waiters take their channel first, check for news, and block on
// the channel only if there was none, so no change can slip between check
// and wait.
type notifier struct {
	mu    sync.Mutex
	users map[string]chan struct{} // only users with a waiter, or woken since
}

func newNotifier() *notifier { return &notifier{users: make(map[string]chan struct{})} }

// wait returns the channel that closes at the user's next change.
func (n *notifier) wait(user string) <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	ch, ok := n.users[user]
	if !ok {
		ch = make(chan struct{})
		n.users[user] = ch
	}
	return ch
}

// wake wakes the users' waiters. Users without one cost nothing.
func (n *notifier) wake(users ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, u := range users {
		if ch, ok := n.users[u]; ok {
			close(ch)
			delete(n.users, u)
		}
	}
}

// Committed is the engine's hook for a new event in a room's timeline: it
// wakes the /sync of every local user with a membership in the room
// (joined, invited, or just left or banned, who must see that too).
func (api *API) Committed(r *dag.Room) {
	var users []string
	for k := range r.State() {
		if k.Type != "m.room.member" {
			continue
		}
		if _, local := api.peers.LocalUser(k.StateKey); local {
			users = append(users, k.StateKey)
		}
	}
	api.notify.wake(users...)
}

// Invited wakes the /sync of a user whose invites changed.
func (api *API) Invited(user string) { api.notify.wake(user) }
