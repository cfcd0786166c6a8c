// Package testkit holds what parley's tests share: waiting for a condition
// with a deadline (WaitFor), following a user's /sync stream through a real
// Matrix client (Syncer), cutting a libp2p network in two (Gater, Split),
// checking that a test leaves no goroutines behind (CheckGoroutines), and
// checking which packages a package may import (CheckImports).
//
// It is test support only: it may be imported from _test.go files and from
// nowhere else, so none of it (nor its testing import) reaches the parley
// binary. TestOnlyTestsImportTestkit enforces that.
package testkit
