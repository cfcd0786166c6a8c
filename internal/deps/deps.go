package deps
import (
 _ "github.com/libp2p/go-libp2p"
 _ "github.com/libp2p/go-libp2p-kad-dht"
 _ "github.com/libp2p/go-libp2p-pubsub"
 _ "github.com/dgraph-io/badger/v4"
 _ "golang.org/x/crypto/ed25519"
 _ "maunium.net/go/mautrix"
)
