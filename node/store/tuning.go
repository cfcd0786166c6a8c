package store

import (
	"log/slog"
	"os"
	"strings"

	badger "github.com/dgraph-io/badger/v4"
)

// Badger's sizes, for a personal node: a few users, up to thousands of
// rooms, writes of a few events at a time (bursts when catching up). The
// Go heap they take is most of what such a node holds, so each is as small
// as measured to do no harm (BenchmarkThousandRooms at 1,000 rooms of 100
// events: heap after an initial sync 94 MB with the sizes before, of which
// 21 MB the memtable's arena and 22 MB cached blocks).
const (
	// memTableSize is the memtable (and the table a flush writes to L0).
	// Badger allocates its arena whole, 1.3 times this, and keeps up to
	// numMemtables of them while one flushes: 16 MiB took 21 MB. It also
	// bounds one transaction at 15% of it (Badger's ErrTxnTooBig): 1.2 MiB
	// at 8 MiB, which holds a full group commit (the store's maxBatch, 512
	// messages of ~1.4 KB each: in the 1,000-room fixture an event is 893
	// bytes, its timeline entry 100, its transaction ID 166, and the room
	// record it rewrites 230), about 720 KB; 4 MiB (0.6 MiB) would not. A
	// group that does not fit is committed update by update, each with its
	// own fsync.
	memTableSize = 8 << 20
	numMemtables = 2

	// blockCacheSize holds decompressed 4 KiB blocks (the tables are
	// Snappy-compressed, so Badger requires a cache). Reads that miss
	// decompress a block from the mapped table again, a few us. 16 MiB
	// held 22 MB of heap and still could not hold an initial sync's
	// working set (20,000 events scattered over every table at 1,000
	// rooms); what it must hold is the recent blocks that idle and
	// incremental /syncs and sends read again and again.
	blockCacheSize = 4 << 20

	// indexCacheSize 0: Badger only caches table indexes of encrypted
	// tables; unencrypted ones are read from the mapped file, so a cache
	// would hold nothing.
	indexCacheSize = 0

	valueLogFileSize        = 64 << 20
	numCompactors           = 2
	numLevelZeroTables      = 4
	numLevelZeroTablesStall = 8
)

// badgerOptions are the options the store opens Badger with at path.
// Tables and value logs record their own sizes, so a data dir written
// with other sizes opens and reads the same; memtable logs do not (see
// memTableSizeAt).
func badgerOptions(path string, log *slog.Logger) badger.Options {
	return badger.DefaultOptions(path).
		WithSyncWrites(true).
		WithLogger(badgerLogger{log}).
		WithNumMemtables(numMemtables).
		WithMemTableSize(memTableSizeAt(path)).
		WithBlockCacheSize(blockCacheSize).
		WithIndexCacheSize(indexCacheSize).
		WithValueLogFileSize(valueLogFileSize).
		WithNumCompactors(numCompactors).
		WithNumLevelZeroTables(numLevelZeroTables).
		WithNumLevelZeroTablesStall(numLevelZeroTablesStall)
}

// memTableSizeAt is the memtable size to open the database at path with:
// memTableSize, or more if a memtable log left there by a crash was
// written with bigger memtables (parley used 16 MiB before). Badger
// replays such a log into a memtable of the size it is opened with, and
// panics if it does not fit ("Arena too small"); it makes each log file
// twice its memtable size, so the file's size tells.
func memTableSizeAt(path string) int64 {
	size := int64(memTableSize)
	ents, err := os.ReadDir(path)
	if err != nil {
		return size // a new database; or Badger reports the error
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".mem") {
			continue
		}
		if fi, err := e.Info(); err == nil && fi.Size()/2 > size {
			size = fi.Size() / 2
		}
	}
	return size
}
