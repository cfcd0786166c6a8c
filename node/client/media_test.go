package client

import (
	"strings"
	"testing"

	"github.com/parley-p2p/parley/node/media"
)

func TestCleanNameAndType(t *testing.T) {
	if got := media.CleanFilename("a/b\\c\r\nd\x00e\xff.txt"); got != "abcde.txt" {
		t.Errorf("CleanFilename = %q", got)
	}
	if got := media.CleanFilename(strings.Repeat("é", 200)); len(got) > 255 || !strings.HasPrefix(got, "é") || strings.ContainsRune(got, '\uFFFD') {
		t.Errorf("CleanFilename of 400 bytes: %d bytes", len(got))
	}
	for in, want := range map[string]string{
		"image/png": "image/png", "TEXT/Plain; Charset=UTF-8": "text/plain; charset=UTF-8",
		"": "application/octet-stream", "nonsense": "application/octet-stream", "image/": "application/octet-stream",
	} {
		if got := cleanType(in); got != want {
			t.Errorf("cleanType(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestThumbnailSizesSnapToTheRecommendedSet(t *testing.T) {
	for _, tc := range []struct {
		w, h, wantW, wantH int
	}{
		{1, 1, 32, 32},
		{50, 50, 96, 96},
		{96, 96, 96, 96},
		{100, 100, 320, 240},
		{300, 200, 320, 240},
		{640, 480, 640, 480},
		{5000, 5000, 800, 600},
	} {
		if w, h := thumbSize(tc.w, tc.h); w != tc.wantW || h != tc.wantH {
			t.Errorf("thumbSize(%d, %d) = %dx%d, want %dx%d", tc.w, tc.h, w, h, tc.wantW, tc.wantH)
		}
	}
}
