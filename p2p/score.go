package p2p

import (
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// GossipSub peer scoring, with parameters chosen for rooms rather than for
// blockchains (which most published parameter sets serve):
//
//   - Rooms are quiet for hours and then bursty, so nothing penalises a
//     mesh peer for delivering too little (P3, P3b off): a silent room
//     must not drive its members apart.
//   - What a peer does wrong that no honest peer does is relay a message
//     the validator rejects (a forgery, a malformed event, an event of
//     another room). That is P4, weighted so that three such messages put
//     the peer below the graylist threshold, after which its RPCs are
//     dropped unread; the count decays over minutes, so a peer that stops
//     recovers. Messages a validator merely ignores (an author this node
//     does not know to be in the room: its view may lag) cost nothing.
//   - Many devices share one address (a family behind one NAT, every test
//     node on 127.0.0.1), so IP colocation is no sign of a Sybil (P6 off).
//   - Peers that deliver first earn a little (P2), so that honest members
//     outrank newcomers when the mesh is pruned; time in mesh (P1) adds a
//     little more. Both are capped well below one invalid message.
//   - Broken gossip promises (IWANT not answered) and GRAFT floods during
//     backoff cost a little each (P7), beyond a small allowance.
const (
	scoreDecayInterval = time.Second
	// invalidWeight: with TopicWeight 1, the penalty is the square of the
	// count: one rejected message costs -10, two -40 (below
	// gossipThreshold: no more gossip with the peer), three -90 (below
	// graylistThreshold: its RPCs are dropped unread).
	invalidWeight = -10
	// invalidDecay per second: a rejected message is forgotten in about
	// ten minutes (0.995^600 ~ 0.05).
	invalidDecay = 0.995

	gossipThreshold   = -10
	publishThreshold  = -50
	graylistThreshold = -80
)

func peerScoreParams() *pubsub.PeerScoreParams {
	return &pubsub.PeerScoreParams{
		Topics:                    map[string]*pubsub.TopicScoreParams{},
		TopicScoreCap:             50,
		AppSpecificScore:          func(peer.ID) float64 { return 0 },
		AppSpecificWeight:         1,
		IPColocationFactorWeight:  0,
		BehaviourPenaltyWeight:    -1,
		BehaviourPenaltyThreshold: 10,
		BehaviourPenaltyDecay:     0.99,
		DecayInterval:             scoreDecayInterval,
		DecayToZero:               0.01,
		RetainScore:               10 * time.Minute,
	}
}

func peerScoreThresholds() *pubsub.PeerScoreThresholds {
	return &pubsub.PeerScoreThresholds{
		GossipThreshold:   gossipThreshold,
		PublishThreshold:  publishThreshold,
		GraylistThreshold: graylistThreshold,
		// Peer exchange helps small networks find each other: take it from
		// any peer not penalised.
		AcceptPXThreshold:           0,
		OpportunisticGraftThreshold: 1,
	}
}

// roomScoreParams are the score parameters of every room topic.
func roomScoreParams() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		TopicWeight:                     1,
		TimeInMeshWeight:                0.01,
		TimeInMeshQuantum:               time.Minute,
		TimeInMeshCap:                   60,
		FirstMessageDeliveriesWeight:    0.5,
		FirstMessageDeliveriesDecay:     0.999,
		FirstMessageDeliveriesCap:       40,
		InvalidMessageDeliveriesWeight:  invalidWeight,
		InvalidMessageDeliveriesDecay:   invalidDecay,
		MeshMessageDeliveriesWeight:     0,
		MeshFailurePenaltyWeight:        0,
		MeshMessageDeliveriesDecay:      0,
		MeshFailurePenaltyDecay:         0,
		MeshMessageDeliveriesCap:        0,
		MeshMessageDeliveriesThreshold:  0,
		MeshMessageDeliveriesWindow:     0,
		MeshMessageDeliveriesActivation: 0,
	}
}
