package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/internal/testkit"
)

// thumbTestImage is a w×h picture: a colour for each of the two side
// bands (x < band or x >= w-band), another for the middle.
func thumbTestImage(w, h, band int, side, middle color.RGBA) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := middle
			if x < band || x >= w-band {
				c = side
			}
			img.SetRGBA(x, y, c)
		}
	}
	return img
}

var (
	red   = color.RGBA{230, 20, 20, 255}
	green = color.RGBA{20, 200, 20, 255}
	blue  = color.RGBA{20, 20, 230, 255}
)

func thumbEncodeJPEG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func thumbEncodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// thumbWithExif puts an Exif APP1 segment carrying orientation o right
// after a JPEG's start-of-image marker, in either byte order, with an
// unrelated tag before the orientation as cameras write.
func thumbWithExif(jpg []byte, o uint16, big bool) []byte {
	var bo binary.AppendByteOrder = binary.LittleEndian
	tiff := []byte("II*\x00")
	if big {
		bo = binary.BigEndian
		tiff = []byte("MM\x00*")
	}
	tiff = bo.AppendUint32(tiff, 8) // IFD0 right after the header
	tiff = bo.AppendUint16(tiff, 2) // two entries
	// Make (0x010F), ASCII, count 4, "Go!\0" inline.
	tiff = bo.AppendUint16(tiff, 0x010F)
	tiff = bo.AppendUint16(tiff, 2)
	tiff = bo.AppendUint32(tiff, 4)
	tiff = append(tiff, "Go!\x00"...)
	// Orientation (0x0112), SHORT, count 1.
	tiff = bo.AppendUint16(tiff, 0x0112)
	tiff = bo.AppendUint16(tiff, 3)
	tiff = bo.AppendUint32(tiff, 1)
	tiff = bo.AppendUint16(tiff, o)
	tiff = append(tiff, 0, 0)
	tiff = bo.AppendUint32(tiff, 0) // no next IFD
	seg := append([]byte("Exif\x00\x00"), tiff...)
	out := append([]byte{}, jpg[:2]...)
	out = append(out, 0xFF, 0xE1)
	out = binary.BigEndian.AppendUint16(out, uint16(len(seg)+2))
	out = append(out, seg...)
	return append(out, jpg[2:]...)
}

// thumbMake calls Thumbnail and decodes what it answers.
func thumbMake(t *testing.T, data []byte, ctype string, w, h int, method string) (image.Image, string) {
	t.Helper()
	out, typ, err := Thumbnail(bytes.NewReader(data), int64(len(data)), ctype, w, h, method, false)
	if err != nil {
		t.Fatalf("Thumbnail(%dx%d %s): %v", w, h, method, err)
	}
	if got := SniffImageType(out); got != typ {
		t.Fatalf("answer says %s but its bytes are %q", typ, got)
	}
	img, _, err := image.Decode(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("the thumbnail does not decode: %v", err)
	}
	return img, typ
}

// thumbNear tells whether two colours are within tol on each channel.
func thumbNear(a color.Color, b color.RGBA, tol int) bool {
	r, g, bl, _ := a.RGBA()
	d := func(x uint32, y uint8) bool { v := int(x>>8) - int(y); return v <= tol && v >= -tol }
	return d(r, b.R) && d(g, b.G) && d(bl, b.B)
}

var (
	thumbBigOnce sync.Once
	thumbBig     []byte
)

// thumbBigJPEG is a 4000×3000 JPEG: red side bands 500 wide, green
// middle, fine noise over all of it so the encoder has detail to keep.
func thumbBigJPEG(t testing.TB) []byte {
	thumbBigOnce.Do(func() {
		img := thumbTestImage(4000, 3000, 500, red, green)
		for i := 0; i < len(img.Pix); i += 4 {
			n := uint8((i * 2654435761) >> 27 & 15)
			img.Pix[i+2] += n
		}
		thumbBig = thumbEncodeJPEG(t, img)
	})
	return thumbBig
}

func TestThumbnailOfA4000x3000JPEG(t *testing.T) {
	data := thumbBigJPEG(t)
	t.Run("scale fits inside the box keeping the aspect", func(t *testing.T) {
		img, typ := thumbMake(t, data, "image/jpeg", 320, 240, "scale")
		if typ != "image/jpeg" || img.Bounds().Dx() != 320 || img.Bounds().Dy() != 240 {
			t.Fatalf("got %s %v, want image/jpeg 320x240", typ, img.Bounds())
		}
		// The red bands are 1/8 of the width each side: 40 pixels.
		if !thumbNear(img.At(10, 120), red, 40) || !thumbNear(img.At(160, 120), green, 40) {
			t.Fatalf("scaled picture lost its bands: %v at the edge, %v in the middle", img.At(10, 120), img.At(160, 120))
		}
		img, _ = thumbMake(t, data, "image/jpeg", 320, 320, "scale")
		if img.Bounds().Dx() != 320 || img.Bounds().Dy() != 240 {
			t.Fatalf("scale into 320x320 gave %v, want 320x240", img.Bounds())
		}
	})
	t.Run("crop is exact and cut from the middle", func(t *testing.T) {
		img, typ := thumbMake(t, data, "image/jpeg", 96, 96, "crop")
		if typ != "image/jpeg" || img.Bounds().Dx() != 96 || img.Bounds().Dy() != 96 {
			t.Fatalf("got %s %v, want image/jpeg 96x96", typ, img.Bounds())
		}
		// The middle 3000×3000 has no red band.
		for _, x := range []int{1, 48, 94} {
			if !thumbNear(img.At(x, 48), green, 40) {
				t.Fatalf("pixel %d of the crop is %v, want the green middle", x, img.At(x, 48))
			}
		}
	})
}

func TestThumbnailNeverEnlarges(t *testing.T) {
	small := thumbEncodePNG(t, thumbTestImage(50, 40, 0, red, green))
	img, _ := thumbMake(t, small, "image/png", 320, 240, "scale")
	if img.Bounds().Dx() != 50 || img.Bounds().Dy() != 40 {
		t.Fatalf("scale of a 50x40 picture gave %v, want it at its own size", img.Bounds())
	}
	tall := thumbEncodePNG(t, thumbTestImage(50, 200, 0, red, green))
	img, _ = thumbMake(t, tall, "image/png", 96, 96, "crop")
	if img.Bounds().Dx() != 50 || img.Bounds().Dy() != 50 {
		t.Fatalf("crop of a 50x200 picture to 96x96 gave %v, want 50x50 (the box's aspect, not enlarged)", img.Bounds())
	}
}

func TestThumbnailOutputFormat(t *testing.T) {
	alpha := image.NewNRGBA(image.Rect(0, 0, 200, 100))
	for y := 0; y < 100; y++ {
		for x := 0; x < 200; x++ {
			a := uint8(255)
			if x < 100 {
				a = 0
			}
			alpha.SetNRGBA(x, y, color.NRGBA{10, 10, 200, a})
		}
	}
	t.Run("a PNG with transparency stays a PNG and keeps it", func(t *testing.T) {
		img, typ := thumbMake(t, thumbEncodePNG(t, alpha), "image/png", 100, 100, "scale")
		if typ != "image/png" {
			t.Fatalf("got %s, want image/png", typ)
		}
		if _, _, _, a := img.At(10, 25).RGBA(); a != 0 {
			t.Fatalf("the transparent half has alpha %d", a>>8)
		}
		if _, _, _, a := img.At(90, 25).RGBA(); a != 0xFFFF {
			t.Fatalf("the opaque half has alpha %d", a>>8)
		}
	})
	t.Run("an opaque PNG stays a PNG", func(t *testing.T) {
		_, typ := thumbMake(t, thumbEncodePNG(t, thumbTestImage(200, 100, 10, red, green)), "image/png", 100, 100, "scale")
		if typ != "image/png" {
			t.Fatalf("got %s, want image/png", typ)
		}
	})
	t.Run("a GIF gives its first frame as a PNG, animated or not", func(t *testing.T) {
		pal := color.Palette{red, blue}
		var g gif.GIF
		for _, idx := range []uint8{0, 1} {
			fr := image.NewPaletted(image.Rect(0, 0, 64, 64), pal)
			for i := range fr.Pix {
				fr.Pix[i] = idx
			}
			g.Image = append(g.Image, fr)
			g.Delay = append(g.Delay, 10)
		}
		var buf bytes.Buffer
		if err := gif.EncodeAll(&buf, &g); err != nil {
			t.Fatal(err)
		}
		for _, animated := range []bool{false, true} {
			out, typ, err := Thumbnail(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "image/gif", 32, 32, "crop", animated)
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(bytes.NewReader(out))
			if typ != "image/png" || err != nil {
				t.Fatalf("got %s (%v), want a PNG", typ, err)
			}
			if !thumbNear(img.At(16, 16), red, 2) {
				t.Fatalf("animated=%v: got %v, want the red first frame", animated, img.At(16, 16))
			}
		}
	})
	t.Run("WebP fixtures decode: lossy to JPEG, with alpha to PNG", func(t *testing.T) {
		for _, c := range []struct{ file, want string }{
			{"testdata/blue-purple-pink.lossy.webp", "image/jpeg"},
			{"testdata/gopher-doc.with-alpha.lossless.webp", "image/png"},
		} {
			data, err := os.ReadFile(c.file)
			if err != nil {
				t.Fatal(err)
			}
			img, typ := thumbMake(t, data, "image/webp", 32, 32, "scale")
			if typ != c.want || img.Bounds().Dx() > 32 || img.Bounds().Dy() > 32 {
				t.Fatalf("%s: got %s %v, want %s within 32x32", c.file, typ, img.Bounds(), c.want)
			}
		}
	})
}

func TestThumbnailFollowsExifOrientation(t *testing.T) {
	// Stored 200×100: top half red, bottom half blue. Orientation 6 means
	// "turn a quarter clockwise to show", so it shows 100×200 with blue
	// on the left, red on the right.
	stored := image.NewRGBA(image.Rect(0, 0, 200, 100))
	for y := 0; y < 100; y++ {
		for x := 0; x < 200; x++ {
			c := red
			if y >= 50 {
				c = blue
			}
			stored.SetRGBA(x, y, c)
		}
	}
	jpg := thumbEncodeJPEG(t, stored)
	for _, big := range []bool{false, true} {
		data := thumbWithExif(jpg, 6, big)
		img, _ := thumbMake(t, data, "image/jpeg", 50, 100, "scale")
		if img.Bounds().Dx() != 50 || img.Bounds().Dy() != 100 {
			t.Fatalf("big-endian=%v: got %v, want 50x100 (turned)", big, img.Bounds())
		}
		if !thumbNear(img.At(5, 50), blue, 40) || !thumbNear(img.At(45, 50), red, 40) {
			t.Fatalf("big-endian=%v: left %v right %v, want blue then red", big, img.At(5, 50), img.At(45, 50))
		}
		w, h, typ, err := ImageSize(bytes.NewReader(data), int64(len(data)))
		if err != nil || w != 100 || h != 200 || typ != "image/jpeg" {
			t.Fatalf("ImageSize = %d×%d %s %v, want 100×200 image/jpeg as shown", w, h, typ, err)
		}
	}
	// Without Exif the same file is shown as stored.
	img, _ := thumbMake(t, jpg, "image/jpeg", 50, 100, "scale")
	if img.Bounds().Dx() != 50 || img.Bounds().Dy() != 25 {
		t.Fatalf("without Exif got %v, want 50x25", img.Bounds())
	}
}

func TestExifApplyTurnsAndMirrorsEveryOrientation(t *testing.T) {
	// Stored 3×2, pixels numbered in reading order:
	//   0 1 2
	//   3 4 5
	stored := image.NewRGBA(image.Rect(0, 0, 3, 2))
	for i := 0; i < 6; i++ {
		stored.Pix[4*i] = uint8(i)
	}
	cases := []struct {
		o    int
		w    int
		want []uint8 // shown pixels in reading order
	}{
		{1, 3, []uint8{0, 1, 2, 3, 4, 5}},
		{2, 3, []uint8{2, 1, 0, 5, 4, 3}},
		{3, 3, []uint8{5, 4, 3, 2, 1, 0}},
		{4, 3, []uint8{3, 4, 5, 0, 1, 2}},
		{5, 2, []uint8{0, 3, 1, 4, 2, 5}},
		{6, 2, []uint8{3, 0, 4, 1, 5, 2}},
		{7, 2, []uint8{5, 2, 4, 1, 3, 0}},
		{8, 2, []uint8{2, 5, 1, 4, 0, 3}},
	}
	for _, c := range cases {
		out := exifApply(stored, c.o)
		if out.Bounds().Dx() != c.w {
			t.Fatalf("orientation %d: width %d, want %d", c.o, out.Bounds().Dx(), c.w)
		}
		var got []uint8
		for i := 0; i < 6; i++ {
			got = append(got, out.Pix[4*i])
		}
		if !bytes.Equal(got, c.want) {
			t.Errorf("orientation %d: shown %v, want %v", c.o, got, c.want)
		}
	}
}

func TestExifOrientationIgnoresWhatItCannotTrust(t *testing.T) {
	jpg := thumbEncodeJPEG(t, thumbTestImage(8, 8, 0, red, red))
	good := thumbWithExif(jpg, 8, false)
	if o := exifScan(good).orientation; o != 8 {
		t.Fatalf("orientation %d, want 8", o)
	}
	cases := map[string][]byte{
		"out of range":     thumbWithExif(jpg, 9, false),
		"zero":             thumbWithExif(jpg, 0, true),
		"no exif":          jpg,
		"cut in the IFD":   good[:30],
		"not a JPEG":       []byte("GIF89a...."),
		"segment too long": append([]byte{0xFF, 0xD8, 0xFF, 0xE1, 0xFF, 0xFF}, "Exif\x00\x00II*\x00"...),
	}
	// An IFD offset pointing past the segment.
	bad := bytes.Clone(good)
	binary.LittleEndian.PutUint32(bad[6+6+4:], 0xFFFFFFF0)
	cases["IFD offset past the end"] = bad
	for name, data := range cases {
		if o := exifScan(data).orientation; o != 1 {
			t.Errorf("%s: orientation %d, want 1", name, o)
		}
	}
}

// thumbPNGBomb is a small, valid-looking PNG declaring w×h pixels: a
// header and a 30 KB IDAT of zeros that would inflate forever.
func thumbPNGBomb(w, h uint32, interlaced bool) []byte {
	chunk := func(out []byte, typ string, data []byte) []byte {
		out = binary.BigEndian.AppendUint32(out, uint32(len(data)))
		start := len(out)
		out = append(out, typ...)
		out = append(out, data...)
		return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(out[start:]))
	}
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 6, 0, 0, 0) // 8-bit RGBA
	if interlaced {
		ihdr[12] = 1
	}
	out := []byte("\x89PNG\r\n\x1a\n")
	out = chunk(out, "IHDR", ihdr)
	return chunk(out, "IDAT", make([]byte, 30_000))
}

func TestThumbnailRefusesDecompressionBombsBeforeDecoding(t *testing.T) {
	jpg := thumbEncodeJPEG(t, thumbTestImage(16, 16, 0, red, red))
	// jpegDims patches the frame header of jpg to declare w×h, and
	// makes it progressive if asked.
	jpegDims := func(w, h uint16, progressive bool) []byte {
		out := bytes.Clone(jpg)
		i := bytes.Index(out, []byte{0xFF, 0xC0})
		if i < 0 {
			t.Fatal("no baseline frame header in the encoded JPEG")
		}
		if progressive {
			out[i+1] = 0xC2
		}
		binary.BigEndian.PutUint16(out[i+5:], h)
		binary.BigEndian.PutUint16(out[i+7:], w)
		return out
	}
	cases := map[string][]byte{
		"a 30 KB PNG declaring 100000x100000":       thumbPNGBomb(100000, 100000, false),
		"a PNG declaring 20001 pixels wide":         thumbPNGBomb(20001, 10, false),
		"a PNG declaring 8000x8000 (64 megapixels)": thumbPNGBomb(8000, 8000, false),
		"an interlaced PNG of 40 megapixels":        thumbPNGBomb(6400, 6250, true),
		"a JPEG declaring 60000x60000":              jpegDims(60000, 60000, false),
		"a progressive JPEG of 35 megapixels":       jpegDims(7000, 5000, true),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, _, err := Thumbnail(bytes.NewReader(data), int64(len(data)), "image/png", 96, 96, "crop", false)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrTooLarge) || errs.KindOf(err) != errs.TooLarge {
				t.Fatalf("got %v, want ErrTooLarge", err)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 50<<20 {
				t.Fatalf("refusing allocated %d MiB", grew>>20)
			}
		})
	}
	// The same dimensions baseline, or not interlaced, are within
	// bounds: only the progressive coefficients or the interlacing
	// passes made them too costly.
	for name, data := range map[string][]byte{
		"a baseline JPEG of 35 megapixels": jpegDims(7000, 5000, false),
		"a PNG of 40 megapixels":           thumbPNGBomb(6400, 6250, false),
	} {
		if w, h, _, err := ImageSize(bytes.NewReader(data), int64(len(data))); err != nil || w*h < 35_000_000 {
			t.Fatalf("%s: %d×%d %v, want accepted", name, w, h, err)
		}
	}
}

func TestThumbnailRefusesWhatIsNotAnImage(t *testing.T) {
	pngData := thumbEncodePNG(t, thumbTestImage(20, 20, 0, red, red))
	svg := []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`)
	html := []byte(`<!doctype html><html><body><img src=x onerror=alert(1)></body></html>`)
	cases := []struct {
		name  string
		ctype string
		data  []byte
	}{
		{"SVG", "image/svg+xml", svg},
		{"SVG declared as PNG", "image/png", svg},
		{"HTML", "text/html", html},
		{"HTML declared as JPEG", "image/jpeg", html},
		{"a PNG declared as HTML", "text/html; charset=utf-8", pngData},
		{"a PNG declared as SVG", "image/svg+xml", pngData},
		{"a PNG cut short", "image/png", pngData[:len(pngData)/2]},
		{"a PNG with its header cut", "image/png", pngData[:20]},
		{"an empty file", "image/png", nil},
		{"a BMP", "image/bmp", []byte("BM\x3a\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := Thumbnail(bytes.NewReader(c.data), int64(len(c.data)), c.ctype, 32, 32, "scale", false)
			if !errors.Is(err, ErrNotImage) || errs.KindOf(err) != errs.Invalid {
				t.Fatalf("got %v, want ErrNotImage", err)
			}
		})
	}
	// Untyped and octet-stream uploads are judged by their bytes.
	for _, ctype := range []string{"", "application/octet-stream"} {
		if _, _, err := Thumbnail(bytes.NewReader(pngData), int64(len(pngData)), ctype, 32, 32, "scale", false); err != nil {
			t.Fatalf("a PNG declared %q: %v", ctype, err)
		}
	}
}

func TestThumbnailRefusesBadSizesAndMethods(t *testing.T) {
	data := thumbEncodePNG(t, thumbTestImage(20, 20, 0, red, red))
	for _, c := range []struct {
		w, h   int
		method string
	}{
		{0, 32, "scale"}, {32, 0, "crop"}, {-1, 32, "scale"}, {2001, 32, "scale"}, {32, 2001, "crop"}, {32, 32, "zoom"}, {32, 32, ""},
	} {
		_, _, err := Thumbnail(bytes.NewReader(data), int64(len(data)), "image/png", c.w, c.h, c.method, false)
		if !errors.Is(err, ErrBadSize) || errs.KindOf(err) != errs.Invalid {
			t.Errorf("%dx%d %q: got %v, want ErrBadSize", c.w, c.h, c.method, err)
		}
	}
	if _, _, err := Thumbnail(bytes.NewReader(data), int64(len(data)), "image/png", 2000, 1, "crop", false); err != nil {
		t.Fatalf("2000x1 is within bounds: %v", err)
	}
}

func TestThumbnailTurnsAwayCallersBeyondTheQueue(t *testing.T) {
	if err := thumbEnter(); err != nil { // this test holds the only turn
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range thumbWaiting {
		wg.Go(func() {
			if err := thumbEnter(); err != nil {
				t.Error(err)
				return
			}
			thumbLeave()
		})
	}
	testkit.WaitFor(t, 10*time.Second, "the queue to fill", func() bool {
		return thumbQueued.Load() == thumbRunning+thumbWaiting
	})
	if err := thumbEnter(); !errors.Is(err, ErrThumbBusy) {
		t.Fatalf("with the queue full got %v, want ErrThumbBusy", err)
	}
	thumbLeave()
	wg.Wait()
	if err := thumbEnter(); err != nil {
		t.Fatalf("after the queue drained: %v", err)
	}
	thumbLeave()
}

func BenchmarkThumbnail4000x3000JPEG(b *testing.B) {
	data := thumbBigJPEG(b)
	for _, c := range []struct {
		name   string
		w, h   int
		method string
	}{
		{"scale 320x240", 320, 240, "scale"},
		{"crop 96x96", 96, 96, "crop"},
		{"scale 800x600", 800, 600, "scale"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := Thumbnail(bytes.NewReader(data), int64(len(data)), "image/jpeg", c.w, c.h, c.method, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// thumbManyScans is a progressive JPEG header with n scans, each a
// scan header and a little entropy-coded data holding a stuffed 0xFF
// and a restart marker; an APP1 segment before the frame holds the bytes
// of a start-of-scan marker that must not be counted.
func thumbManyScans(n int) []byte {
	out := []byte{0xFF, 0xD8}
	out = append(out, 0xFF, 0xE1, 0x00, 0x06, 0xFF, 0xDA, 0xFF, 0xDA)
	// SOF2: 8-bit, 16×16, one component sampled 1×1.
	out = append(out, 0xFF, 0xC2, 0x00, 0x0B, 8, 0, 16, 0, 16, 1, 1, 0x11, 0)
	for range n {
		out = append(out, 0xFF, 0xDA, 0x00, 0x08, 1, 1, 0x00, 0, 63, 0)
		out = append(out, 0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56)
	}
	return append(out, 0xFF, 0xD9)
}

func TestThumbnailRefusesProgressiveJPEGsOfManyScans(t *testing.T) {
	if got := exifScans(bytes.NewReader(thumbManyScans(5)), thumbMaxScans); got != 5 {
		t.Fatalf("counted %d scans, want 5", got)
	}
	real := thumbWithExif(thumbEncodeJPEG(t, thumbTestImage(16, 16, 0, red, red)), 1, false)
	if got := exifScans(bytes.NewReader(real), thumbMaxScans); got != 1 {
		t.Fatalf("counted %d scans in an encoded baseline JPEG, want 1", got)
	}
	data := thumbManyScans(thumbMaxScans + 1)
	if _, _, err := Thumbnail(bytes.NewReader(data), int64(len(data)), "image/jpeg", 32, 32, "scale", false); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("%d scans: got %v, want ErrTooLarge", thumbMaxScans+1, err)
	}
	// At the limit the header passes; this one then fails to decode (it
	// has no Huffman tables), as a file it is.
	data = thumbManyScans(thumbMaxScans)
	if _, _, err := Thumbnail(bytes.NewReader(data), int64(len(data)), "image/jpeg", 32, 32, "scale", false); !errors.Is(err, ErrNotImage) {
		t.Fatalf("%d scans: got %v, want ErrNotImage from the decoder", thumbMaxScans, err)
	}
}

func TestThumbHalveInPlanesMatchesHalvingInRGB(t *testing.T) {
	ratios := []image.YCbCrSubsampleRatio{
		image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420,
		image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410,
	}
	var srcs []image.Image
	for _, r := range ratios {
		img := image.NewYCbCr(image.Rect(0, 0, 64, 48), r)
		for y := 0; y < 48; y++ {
			for x := 0; x < 64; x++ {
				img.Y[img.YOffset(x, y)] = uint8(40 + 2*x + y)
				img.Cb[img.COffset(x, y)] = uint8(60 + 2*y)
				img.Cr[img.COffset(x, y)] = uint8(200 - 2*x)
			}
		}
		srcs = append(srcs, img)
	}
	gray := image.NewGray(image.Rect(0, 0, 64, 48))
	for i := range gray.Pix {
		gray.Pix[i] = uint8(i * 7)
	}
	srcs = append(srcs, gray)
	// A paletted frame with a transparent colour: premultiplied
	// averages, as draw makes.
	pal := image.NewPaletted(image.Rect(0, 0, 64, 48), color.Palette{red, blue, color.RGBA{}, color.RGBA{0, 100, 0, 200}})
	for i := range pal.Pix {
		pal.Pix[i] = uint8(i*5/3) % 4
	}
	srcs = append(srcs, pal)
	for _, src := range srcs {
		for _, sr := range []image.Rectangle{src.Bounds(), image.Rect(4, 8, 40, 32)} {
			got := thumbHalve(src, sr)
			want := image.NewRGBA(image.Rect(0, 0, sr.Dx()/2, sr.Dy()/2))
			for y := 0; y < want.Bounds().Dy(); y++ {
				for x := 0; x < want.Bounds().Dx(); x++ {
					// The average of the 2×2 block, in RGB.
					var sum [4]int
					for _, d := range []image.Point{{0, 0}, {1, 0}, {0, 1}, {1, 1}} {
						r, g, b, a := src.At(sr.Min.X+2*x+d.X, sr.Min.Y+2*y+d.Y).RGBA()
						sum[0], sum[1], sum[2], sum[3] = sum[0]+int(r>>8), sum[1]+int(g>>8), sum[2]+int(b>>8), sum[3]+int(a>>8)
					}
					want.SetRGBA(x, y, color.RGBA{uint8(sum[0] / 4), uint8(sum[1] / 4), uint8(sum[2] / 4), uint8(sum[3] / 4)})
				}
			}
			if got.Bounds() != want.Bounds() {
				t.Fatalf("%T %v: halved to %v, want %v", src, sr, got.Bounds(), want.Bounds())
			}
			for y := 0; y < want.Bounds().Dy(); y++ {
				for x := 0; x < want.Bounds().Dx(); x++ {
					_, _, _, ga := got.At(x, y).RGBA()
					if !thumbNear(got.At(x, y), want.RGBAAt(x, y), 8) || int(ga>>8)-int(want.RGBAAt(x, y).A) > 2 || int(want.RGBAAt(x, y).A)-int(ga>>8) > 2 {
						t.Fatalf("%T %v (%v): pixel %d,%d is %v, want about %v", src, sr, thumbRatio(src), x, y, got.At(x, y), want.RGBAAt(x, y))
					}
				}
			}
		}
	}
}

func thumbRatio(img image.Image) string {
	if y, ok := img.(*image.YCbCr); ok {
		return y.SubsampleRatio.String()
	}
	return fmt.Sprintf("%T", img)
}

func TestThumbnailOfAnAnimatedWebPIsRefused(t *testing.T) {
	// VP8X with the animation flag, a 64×64 canvas, then ANIM and ANMF
	// chunks, which x/image/webp does not decode.
	chunk := func(out []byte, fcc string, data []byte) []byte {
		out = append(out, fcc...)
		out = binary.LittleEndian.AppendUint32(out, uint32(len(data)))
		out = append(out, data...)
		if len(data)%2 == 1 {
			out = append(out, 0)
		}
		return out
	}
	body := []byte("WEBP")
	body = chunk(body, "VP8X", []byte{1 << 1, 0, 0, 0, 63, 0, 0, 63, 0, 0})
	body = chunk(body, "ANIM", make([]byte, 6))
	body = chunk(body, "ANMF", make([]byte, 40))
	data := binary.LittleEndian.AppendUint32([]byte("RIFF"), uint32(len(body)))
	data = append(data, body...)
	if w, h, typ, err := ImageSize(bytes.NewReader(data), int64(len(data))); err != nil || w != 64 || h != 64 || typ != "image/webp" {
		t.Fatalf("ImageSize = %d×%d %s %v, want the 64×64 canvas", w, h, typ, err)
	}
	if _, _, err := Thumbnail(bytes.NewReader(data), int64(len(data)), "image/webp", 32, 32, "scale", true); !errors.Is(err, ErrNotImage) {
		t.Fatalf("got %v, want ErrNotImage", err)
	}
}

func TestThumbnailAllocatesNoMoreThanItsHeaderEstimate(t *testing.T) {
	pic := thumbTestImage(2000, 1500, 300, red, green)
	pal := image.NewPaletted(pic.Bounds(), color.Palette{red, green, blue})
	for i := range pal.Pix {
		pal.Pix[i] = uint8(i % 3)
	}
	var g bytes.Buffer
	if err := gif.Encode(&g, pal, nil); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"JPEG": thumbEncodeJPEG(t, pic),
		"PNG":  thumbEncodePNG(t, pic),
		"GIF":  g.Bytes(),
	} {
		t.Run(name, func(t *testing.T) {
			h, err := thumbProbe(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			perPixel, _ := thumbCost(h.typ, data[:min(len(data), thumbHead)], cfg, &thumbHeader{})
			estimate := uint64(perPixel * float64(h.width*h.height))
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			if _, _, err := Thumbnail(bytes.NewReader(data), int64(len(data)), "", 96, 96, "crop", false); err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			// Beyond the picture: the header read, the last scaling
			// step's scratch, the encoder.
			const slack = 2 << 20
			used := after.TotalAlloc - before.TotalAlloc
			t.Logf("allocated %d KiB, estimated %d KiB", used>>10, estimate>>10)
			if used > estimate+slack {
				t.Fatalf("allocated %d KiB, over the estimate of %d KiB", used>>10, estimate>>10)
			}
		})
	}
}
