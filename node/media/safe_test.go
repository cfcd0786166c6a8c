package media

import (
	"mime"
	"strings"
	"testing"
)

func TestInlineSafeAllowsOnlyTheSpecsList(t *testing.T) {
	cases := map[string]bool{
		"image/png":                           true,
		"IMAGE/JPEG":                          true,
		"image/webp; foo=bar":                 true,
		"video/mp4":                           true,
		"audio/ogg":                           true,
		"text/plain; charset=utf-8":           true,
		"text/html":                           false,
		"text/html; charset=utf-8":            false,
		"image/svg+xml":                       false,
		"application/xhtml+xml":               false,
		"text/xml":                            false,
		"application/xml":                     false,
		"application/javascript":              false,
		"text/javascript":                     false,
		"application/pdf":                     false,
		"application/octet-stream":            false,
		"":                                    false,
		"image/png, text/html":                false,
		"not a type":                          false,
		"multipart/x-mixed-replace; boundary": false,
	}
	for ct, want := range cases {
		if got := InlineSafe(ct); got != want {
			t.Errorf("InlineSafe(%q) = %v, want %v", ct, got, want)
		}
	}
}

func TestDispositionCleansAndEncodesTheFilename(t *testing.T) {
	cases := []struct {
		name, ctype, filename string
		want                  string
	}{
		{"a picture without a name is inline", "image/png", "", "inline"},
		{"HTML is an attachment", "text/html", "page.html", `attachment; filename="page.html"`},
		{"SVG is an attachment", "image/svg+xml", "x.svg", `attachment; filename="x.svg"`},
		{"quotes, backslashes and slashes are dropped", "image/png", `a"b\c/d.png`, `inline; filename="abcd.png"`},
		{"CR and LF cannot start a header", "text/plain", "a\r\nSet-Cookie: x=1.txt", `inline; filename="aSet-Cookie: x=1.txt"`},
		{"controls and a right-to-left override are dropped", "application/zip", "re\x00port\u202Egpj.exe", `attachment; filename="reportgpj.exe"`},
		{"a name of nothing but controls is no name", "image/png", "\r\n\x00", "inline"},
		{"non-ASCII gets an ASCII fallback and filename*", "image/jpeg", "café ☕.jpg",
			`inline; filename="caf_ _.jpg"; filename*=UTF-8''caf%C3%A9%20%E2%98%95.jpg`},
		{"invalid UTF-8 is dropped", "text/plain", "a\xffb.txt", `inline; filename="ab.txt"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Disposition(c.ctype, c.filename); got != c.want {
				t.Fatalf("Disposition(%q, %q) =\n  %s\nwant\n  %s", c.ctype, c.filename, got, c.want)
			}
		})
	}
}

func TestDispositionReadsBackAsTheCleanedName(t *testing.T) {
	for _, name := range []string{"café ☕.jpg", "日本語のファイル.pdf", "plain.txt", "100% (final); v2.doc"} {
		d := Disposition("application/pdf", name)
		kind, params, err := mime.ParseMediaType(d)
		if err != nil || kind != "attachment" {
			t.Fatalf("%q gave %q, which does not parse: %v", name, d, err)
		}
		if params["filename"] != name {
			t.Fatalf("%q gave %q, read back as %q", name, d, params["filename"])
		}
	}
}

func TestDispositionCapsTheFilenameAtARuneBoundary(t *testing.T) {
	d := Disposition("image/png", strings.Repeat("é", 300)) // 600 bytes
	_, params, err := mime.ParseMediaType(d)
	if err != nil {
		t.Fatal(err)
	}
	if got := params["filename"]; len(got) > 255 || got != strings.Repeat("é", 127) {
		t.Fatalf("capped name is %d bytes: %q", len(got), got)
	}
}

func TestSniffImageTypeReadsMagicNumbers(t *testing.T) {
	cases := map[string]string{
		"\xff\xd8\xff\xe0\x00\x10JFIF":    "image/jpeg",
		"\x89PNG\r\n\x1a\n\x00\x00\x00\r": "image/png",
		"GIF87a\x01\x00":                  "image/gif",
		"GIF89a\x01\x00":                  "image/gif",
		"RIFF\x24\x00\x00\x00WEBPVP8 ":    "image/webp",
		"RIFF\x24\x00\x00\x00WAVEfmt ":    "",
		"<svg xmlns=":                     "",
		"<!doctype html>":                 "",
		"\xff\xd8":                        "",
		"":                                "",
		"GIF90a":                          "",
		"\x89PNG\r\n\x1a":                 "",
	}
	for head, want := range cases {
		if got := SniffImageType([]byte(head)); got != want {
			t.Errorf("SniffImageType(%q) = %q, want %q", head, got, want)
		}
	}
}
