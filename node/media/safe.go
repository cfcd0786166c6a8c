package media

import (
	"bytes"
	"mime"
	"strings"
	"unicode"
	"unicode/utf8"
)

// safeInline is the spec's list of types a server may serve with
// Content-Disposition: inline ("Serving inline content", client-server
// API v1.16). None of them runs script in a browser; everything else —
// text/html, image/svg+xml, application/xhtml+xml, text/xml,
// application/javascript, application/pdf... — is served as an
// attachment, because the API shares its origin (and so its access token)
// with the bundled app.
var safeInline = map[string]bool{
	"text/css":            true,
	"text/plain":          true,
	"text/csv":            true,
	"application/json":    true,
	"application/ld+json": true,
	"image/jpeg":          true,
	"image/gif":           true,
	"image/png":           true,
	"image/apng":          true,
	"image/webp":          true,
	"image/avif":          true,
	"video/mp4":           true,
	"video/webm":          true,
	"video/ogg":           true,
	"video/quicktime":     true,
	"audio/mp4":           true,
	"audio/webm":          true,
	"audio/aac":           true,
	"audio/mpeg":          true,
	"audio/ogg":           true,
	"audio/wave":          true,
	"audio/wav":           true,
	"audio/x-wav":         true,
	"audio/x-pn-wav":      true,
	"audio/flac":          true,
	"audio/x-flac":        true,
}

// InlineSafe tells whether content of this declared type may be served
// inline: only the spec's allow-list, compared on the media type alone
// (parameters dropped, case folded). A type that does not parse is not
// safe.
func InlineSafe(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return safeInline[mt]
}

// safeMaxName caps the filename offered in Content-Disposition, in bytes
// of UTF-8.
const safeMaxName = 255

// Disposition is the Content-Disposition value for content of this type:
// "inline" for InlineSafe types, "attachment" for everything else, with
// the filename (if any is left after cleaning) as an ASCII fallback
// filename="..." and, when it has non-ASCII letters, filename*=UTF-8”...
// percent-encoded (RFC 6266, RFC 8187). Cleaning drops control and
// invisible format characters (CR, LF, NUL, bidi overrides), quotes,
// backslashes and slashes, invalid UTF-8, and cuts the name to 255 bytes.
func Disposition(contentType, filename string) string {
	kind := "attachment"
	if InlineSafe(contentType) {
		kind = "inline"
	}
	name := CleanFilename(filename)
	if name == "" {
		return kind
	}
	var b strings.Builder
	b.WriteString(kind)
	b.WriteString(`; filename="`)
	ascii := true
	for _, r := range name {
		if r >= utf8.RuneSelf {
			ascii = false
			b.WriteByte('_')
			continue
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	if !ascii {
		b.WriteString("; filename*=UTF-8''")
		for i := 0; i < len(name); i++ {
			c := name[i]
			if safeAttrChar(c) {
				b.WriteByte(c)
				continue
			}
			const hex = "0123456789ABCDEF"
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// CleanFilename is name without what must never reach a header or a
// save dialog, cut at a rune boundary to safeMaxName bytes: the name a
// node keeps and serves for an upload.
func CleanFilename(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case r == utf8.RuneError, r == '"', r == '\\', r == '/',
			unicode.IsControl(r), unicode.Is(unicode.Cf, r),
			r == '\u2028', r == '\u2029':
			continue
		}
		if b.Len()+utf8.RuneLen(r) > safeMaxName {
			break
		}
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String())
}

// safeAttrChar is RFC 8187's attr-char: what may stand unescaped in an
// ext-value.
func safeAttrChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$&+-.^_`|~", c) >= 0
}

// SniffImageType names the image format of a file from its first bytes
// (12 are enough): "image/jpeg", "image/png" (APNG included), "image/gif"
// or "image/webp"; "" for anything else. The uploader uses it to check a
// claimed image type; thumbnails decode only what it names.
func SniffImageType(head []byte) string {
	switch {
	case len(head) >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF:
		return "image/jpeg"
	case bytes.HasPrefix(head, []byte("\x89PNG\r\n\x1a\n")):
		return "image/png"
	case bytes.HasPrefix(head, []byte("GIF87a")), bytes.HasPrefix(head, []byte("GIF89a")):
		return "image/gif"
	case len(head) >= 12 && bytes.Equal(head[:4], []byte("RIFF")) && bytes.Equal(head[8:12], []byte("WEBP")):
		return "image/webp"
	}
	return ""
}
