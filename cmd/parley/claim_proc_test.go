package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// `parley run` on a fresh data dir prints the URL that claims the node,
// with the code it wrote to DIR/claim-code; --claim-code chooses the code;
// once claimed, a restart prints no claim URL.
func TestRunPrintsTheClaimURL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	p := startParley(t, "fresh", nodeArgs(dir)...)
	info := p.waitStarted()
	file, err := os.ReadFile(filepath.Join(dir, "claim-code"))
	if err != nil {
		t.Fatal(err)
	}
	if info.ClaimCode == "" || info.ClaimCode != strings.TrimSpace(string(file)) {
		t.Fatalf("printed claim code %q, file holds %q", info.ClaimCode, file)
	}
	if !strings.Contains(p.stdout.String(), "claim:       "+info.URL+"/#/claim/"+info.ClaimCode+"\n") {
		t.Errorf("stdout:\n%s", p.stdout.String())
	}
	stopAll(p)

	dir2 := t.TempDir()
	q := startParley(t, "scripted", append(nodeArgs(dir2), "--claim-code", "chosen-claim-code")...)
	info = q.waitStarted()
	if info.ClaimCode != "chosen-claim-code" {
		t.Fatalf("printed claim code %q, want the chosen one", info.ClaimCode)
	}
	register(t, ctx, info, "alice")
	stopAll(q)

	r := startParley(t, "claimed", append(nodeArgs(dir2), "--claim-code", "chosen-claim-code")...)
	info = r.waitStarted()
	if info.ClaimCode != "" || strings.Contains(r.stdout.String(), "claim:") {
		t.Errorf("a claimed node printed a claim URL:\n%s", r.stdout.String())
	}
	if _, err := os.Stat(filepath.Join(dir2, "claim-code")); err == nil {
		t.Error("a claimed node wrote claim-code")
	}
}
