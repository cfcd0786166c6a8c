package node

import (
	"context"
	"testing"
	"time"

	"github.com/parley-p2p/parley/internal/testkit"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// TestRedactionsApplyOnlyWhereAllowed: the admin's redaction of a message
// and a user's redaction of their own message apply on every node; a user
// without the redact level cannot redact someone else's message (the
// redaction event is accepted, but not applied).
func TestRedactionsApplyOnlyWhereAllowed(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _, alice, bob, room := twoMembers(t, ctx, testOpts{}, testOpts{})

	send := func(c *mautrix.Client, body string) id.EventID {
		resp, err := c.SendText(ctx, room, body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.EventID
	}
	byAdmin, byBob, bobTries := send(bob, "rude"), send(bob, "typo"), send(alice, "alice's words")
	for _, r := range []struct {
		c  *mautrix.Client
		ev id.EventID
	}{{alice, byAdmin}, {bob, byBob}, {bob, bobTries}} {
		if _, err := r.c.RedactEvent(ctx, room, r.ev); err != nil {
			t.Fatalf("redact %s: %v", r.ev, err)
		}
	}
	cases := []struct {
		name     string
		ev       id.EventID
		redacted bool
	}{
		{"the admin's redaction of bob's message applies", byAdmin, true},
		{"bob's redaction of his own message applies", byBob, true},
		{"bob cannot redact alice's message", bobTries, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range []*mautrix.Client{alice, bob} {
				var ev *event.Event
				testkit.WaitFor(t, 20*time.Second, "the event and its redaction to reach "+c.UserID.String(), func() bool {
					var err error
					ev, err = c.GetEvent(ctx, room, tc.ev)
					if err != nil {
						return false
					}
					if !tc.redacted {
						// Wait until the (ineffective) redaction has arrived too.
						msgs, err := c.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 20)
						if err != nil {
							return false
						}
						n := 0
						for _, m := range msgs.Chunk {
							if m.Type == event.EventRedaction {
								n++
							}
						}
						return n == 3
					}
					return ev.Unsigned.RedactedBecause != nil
				})
				_, hasBody := ev.Content.Raw["body"]
				if tc.redacted == hasBody {
					t.Errorf("%s sees body present=%v, want redacted=%v", c.UserID, hasBody, tc.redacted)
				}
			}
		})
	}
}
