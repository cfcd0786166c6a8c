package media

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"os"
	"testing"
)

// thumbFuzzSeeds are small files of every kind Thumbnail reads, with and
// without Exif, and a few that are not images.
func thumbFuzzSeeds(f *testing.F) [][]byte {
	jpg := thumbEncodeJPEG(f, thumbTestImage(24, 16, 4, red, green))
	seeds := [][]byte{
		jpg,
		thumbWithExif(jpg, 6, false),
		thumbWithExif(jpg, 3, true),
		thumbEncodePNG(f, thumbTestImage(16, 24, 3, blue, green)),
		thumbPNGBomb(64, 64, true),
		[]byte("<svg></svg>"),
	}
	var buf bytes.Buffer
	fr := image.NewPaletted(image.Rect(0, 0, 8, 8), color.Palette{red, blue})
	if err := gif.Encode(&buf, fr, nil); err != nil {
		f.Fatal(err)
	}
	seeds = append(seeds, buf.Bytes())
	for _, name := range []string{"testdata/blue-purple-pink.lossy.webp", "testdata/gopher-doc.with-alpha.lossless.webp"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, data)
	}
	return seeds
}

// FuzzExifScan: whatever the bytes, the header walks end, never panic,
// name an orientation in 1..8 and count scans up to their limit.
func FuzzExifScan(f *testing.F) {
	for _, s := range thumbFuzzSeeds(f) {
		f.Add(s)
	}
	f.Add(thumbManyScans(6))
	f.Fuzz(func(t *testing.T, data []byte) {
		j := exifScan(data)
		if j.orientation < 1 || j.orientation > 8 {
			t.Fatalf("orientation %d", j.orientation)
		}
		if len(j.components) > 255 {
			t.Fatalf("%d components", len(j.components))
		}
		// The scan count ends, and stops once past its limit.
		if n := exifScans(bytes.NewReader(data), 3); n < 0 || n > 4 {
			t.Fatalf("%d scans counted with a limit of 3", n)
		}
		// The orientation of a TIFF body alone is just as bounded.
		if o := exifOrientation(data); o < 1 || o > 8 {
			t.Fatalf("orientation %d", o)
		}
	})
}

// FuzzThumbnail: whatever the bytes, Thumbnail answers a known error or
// a decodable picture within the box, and never panics.
func FuzzThumbnail(f *testing.F) {
	for _, s := range thumbFuzzSeeds(f) {
		f.Add(s, uint8(32), uint8(24), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, w, h uint8, crop bool) {
		// A mutated header may declare a large picture within the
		// bounds; decoding one is allowed but too slow for fuzzing.
		if pw, ph, _, err := ImageSize(bytes.NewReader(data), int64(len(data))); err == nil && pw*ph > 1<<20 {
			t.Skip()
		}
		method := "scale"
		if crop {
			method = "crop"
		}
		out, typ, err := Thumbnail(bytes.NewReader(data), int64(len(data)), "", int(w), int(h), method, false)
		if err != nil {
			if !errors.Is(err, ErrNotImage) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrBadSize) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		img, _, err := image.Decode(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("the %s answer does not decode: %v", typ, err)
		}
		if b := img.Bounds(); b.Dx() < 1 || b.Dy() < 1 || b.Dx() > int(w) || b.Dy() > int(h) {
			t.Fatalf("%s %dx%d gave %v", method, w, h, b)
		}
	})
}
