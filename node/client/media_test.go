package client

import (
	"strings"
	"testing"
)

func TestDisposition(t *testing.T) {
	for _, tc := range []struct{ name, ct, file, want string }{
		{"a picture is inline", "image/png", "a.png", `inline; filename="a.png"`},
		{"parameters and case do not matter", "Image/JPEG; foo=bar", "", "inline"},
		{"HTML is an attachment", "text/html", "x.html", `attachment; filename="x.html"`},
		{"SVG is an attachment", "image/svg+xml", "", "attachment"},
		{"XML is an attachment", "text/xml", "", "attachment"},
		{"JavaScript is an attachment", "application/javascript", "", "attachment"},
		{"a malformed type is an attachment", "image/", "", "attachment"},
		{"quotes and backslashes never end the name", `text/plain`, `a"b\c.txt`, `inline; filename="a_bc.txt"; filename*=utf-8''a%22bc.txt`},
		{"a name with ; and ' is encoded", "text/plain", "it's;x", `inline; filename="it's;x"`},
		{"non-ASCII has an ASCII fallback", "text/plain", "日記.txt", `inline; filename="__.txt"; filename*=utf-8''%E6%97%A5%E8%A8%98.txt`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := disposition(tc.ct, tc.file); got != tc.want {
				t.Errorf("disposition(%q, %q) = %q, want %q", tc.ct, tc.file, got, tc.want)
			}
		})
	}
}

func TestCleanNameAndType(t *testing.T) {
	if got := cleanName("a/b\\c\r\nd\x00e\xff.txt"); got != "abcde.txt" {
		t.Errorf("cleanName = %q", got)
	}
	if got := cleanName(strings.Repeat("é", 200)); len(got) > 255 || !strings.HasPrefix(got, "é") || strings.ContainsRune(got, '\uFFFD') {
		t.Errorf("cleanName of 400 bytes: %d bytes", len(got))
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
