package media

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"math"
	"mime"
	"strings"
	"sync/atomic"

	"golang.org/x/image/draw"
	"golang.org/x/image/webp"

	"github.com/parley-p2p/parley/errs"
)

// Errors of Thumbnail and ImageSize. They are *errs.Error values (compare
// with errors.Is), so the client API maps them without help: ErrNotImage
// and ErrBadSize to 400, ErrTooLarge to 413. ErrThumbBusy is the caller's to
// answer (429 with retry_after_ms).
var (
	ErrNotImage  = errs.Invalidf("media: the content is not an image this node can thumbnail (JPEG, PNG, GIF, WebP)")
	ErrTooLarge  = errs.TooLargef("media: the image is too large to thumbnail")
	ErrBadSize   = errs.Invalidf("media: a thumbnail's width and height must be 1..2000 and its method crop or scale")
	ErrThumbBusy = errors.New("media: too many thumbnails are being made; try again shortly")
)

// Bounds of the thumbnailer. A file passes every check on its header
// (image.DecodeConfig and the JPEG frame header) before a pixel is
// decoded, so a small file declaring a huge picture costs nothing.
const (
	// thumbMaxSide is the largest thumbnail width or height a client may
	// ask for.
	thumbMaxSide = 2000
	// thumbMaxDim and thumbMaxPixels bound the source picture.
	thumbMaxDim    = 20000
	thumbMaxPixels = 50_000_000
	// thumbMaxDecode bounds the memory a decode is expected to hold (the
	// decoded picture, a progressive JPEG's coefficients, the halving
	// steps), estimated per format from the header.
	thumbMaxDecode = 256 << 20
	// thumbMaxKernelTmp bounds the scratch buffer of the final
	// CatmullRom pass (32 bytes per destination-width × source-height
	// pixel); past it the last step uses ApproxBiLinear, which needs none.
	thumbMaxKernelTmp = 32 << 20
	// thumbHead is how much of the file's start is read for sniffing
	// and the JPEG header segments (Exif is at most 64 KiB).
	thumbHead = 256 << 10
	// thumbRunning thumbnails are made at once; thumbWaiting more may
	// wait for their turn; beyond that Thumbnail answers ErrThumbBusy.
	thumbRunning = 1
	thumbWaiting = 4
	// thumbJPEGQuality is the quality of JPEG thumbnails.
	thumbJPEGQuality = 80
	// thumbMaxScans bounds the scans of a progressive JPEG (libjpeg
	// writes 10, mozjpeg about as many): the decoder's time grows with
	// scans × pixels (measured: 35 ms a scan at 16 megapixels, so a
	// 38 KB file of 200 scans held it 7 s).
	thumbMaxScans = 32
)

var (
	thumbTurn    = make(chan struct{}, thumbRunning)
	thumbQueued  atomic.Int32
	thumbMethods = map[string]bool{"crop": true, "scale": true}
)

// Thumbnail makes a thumbnail of the image in src (size bytes long) of at
// most width × height pixels, as shown (JPEG Exif orientation applied).
// method "scale" fits the picture inside width × height keeping its
// aspect; "crop" covers width × height and cuts the middle out, so the
// answer is exactly width × height. Neither ever enlarges: a source
// smaller than asked is re-encoded at its own size ("crop" then keeps
// the asked aspect, cut from the middle at full resolution).
//
// The format is read from the bytes (JPEG, PNG, GIF, WebP); contentType,
// the type the uploader declared, only rules out content declared as
// something other than an image. GIFs give their first frame, and so
// does animated=true: this node does not make animated thumbnails (the
// spec allows a static one). Animated WebP is not decoded (ErrNotImage).
// The answer is PNG for PNG and GIF sources and for any with
// transparency, else JPEG at quality 80; outType names it.
//
// Errors: ErrBadSize, ErrNotImage, ErrTooLarge (over 20000 pixels a
// side, 50 megapixels, or an estimated 256 MiB to decode), ErrThumbBusy when
// more than a few are waiting, and read errors of src.
func Thumbnail(src io.ReaderAt, size int64, contentType string, width, height int, method string, animated bool) (data []byte, outType string, err error) {
	_ = animated // static thumbnails only; see above
	if width < 1 || width > thumbMaxSide || height < 1 || height > thumbMaxSide || !thumbMethods[method] {
		return nil, "", ErrBadSize
	}
	if !thumbDeclaredImage(contentType) {
		return nil, "", ErrNotImage
	}
	h, err := thumbProbe(src, size)
	if err != nil {
		return nil, "", err
	}
	if err := thumbEnter(); err != nil {
		return nil, "", err
	}
	defer thumbLeave()
	img, err := thumbDecode(h.typ, io.NewSectionReader(src, 0, size))
	if err != nil {
		return nil, "", err
	}
	out := thumbResize(img, width, height, method, h.orientation)
	if h.typ == "image/png" || h.typ == "image/gif" || !out.Opaque() {
		var buf bytes.Buffer
		if err := png.Encode(&buf, out); err != nil {
			return nil, "", fmt.Errorf("media: encode thumbnail: %w", err)
		}
		return buf.Bytes(), "image/png", nil
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, out, &jpeg.Options{Quality: thumbJPEGQuality}); err != nil {
		return nil, "", fmt.Errorf("media: encode thumbnail: %w", err)
	}
	return buf.Bytes(), "image/jpeg", nil
}

// ImageSize reads the dimensions of the image in src as it is shown (a
// JPEG's Exif orientation applied) and its type as sniffed from its
// bytes, decoding no pixels: what an uploader puts in info.w and info.h.
// Errors: ErrNotImage, ErrTooLarge (the bounds Thumbnail has, so a size
// it answers is one Thumbnail can work from), read errors.
func ImageSize(src io.ReaderAt, size int64) (w, h int, typ string, err error) {
	p, err := thumbProbe(src, size)
	if err != nil {
		return 0, 0, "", err
	}
	w, h = p.width, p.height
	if exifSwapsAxes(p.orientation) {
		w, h = h, w
	}
	return w, h, p.typ, nil
}

// thumbDeclaredImage tells whether a declared type leaves room for an
// image: an image/* type other than SVG, an octet stream, or nothing.
func thumbDeclaredImage(contentType string) bool {
	if strings.TrimSpace(contentType) == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	if mt == "application/octet-stream" {
		return true
	}
	return strings.HasPrefix(mt, "image/") && mt != "image/svg+xml"
}

// thumbHeader is what thumbProbe learns without decoding pixels.
type thumbHeader struct {
	typ           string
	width, height int
	orientation   int
}

// thumbProbe sniffs the format, reads the header and refuses what is not
// a decodable image or would cost too much to decode.
func thumbProbe(src io.ReaderAt, size int64) (thumbHeader, error) {
	if size <= 0 {
		return thumbHeader{}, ErrNotImage
	}
	head := make([]byte, min(size, thumbHead))
	if n, err := src.ReadAt(head, 0); n < len(head) {
		return thumbHeader{}, fmt.Errorf("media: read image header: %w", err)
	}
	h := thumbHeader{typ: SniffImageType(head), orientation: 1}
	var decodeConfig func(io.Reader) (image.Config, error)
	switch h.typ {
	case "image/jpeg":
		decodeConfig = jpeg.DecodeConfig
	case "image/png":
		decodeConfig = png.DecodeConfig
	case "image/gif":
		decodeConfig = gif.DecodeConfig
	case "image/webp":
		decodeConfig = webp.DecodeConfig
	default:
		return thumbHeader{}, ErrNotImage
	}
	cfg, err := thumbSafely(func() (image.Config, error) {
		return decodeConfig(io.NewSectionReader(src, 0, size))
	})
	if err != nil {
		return thumbHeader{}, fmt.Errorf("%w: %v", ErrNotImage, err)
	}
	h.width, h.height = cfg.Width, cfg.Height
	if h.width < 1 || h.height < 1 {
		return thumbHeader{}, ErrNotImage
	}
	if h.width > thumbMaxDim || h.height > thumbMaxDim || h.width*h.height > thumbMaxPixels {
		return thumbHeader{}, fmt.Errorf("%w: %d×%d pixels", ErrTooLarge, h.width, h.height)
	}
	perPixel, progressive := thumbCost(h.typ, head, cfg, &h)
	if cost := float64(h.width) * float64(h.height) * perPixel; cost > thumbMaxDecode {
		return thumbHeader{}, fmt.Errorf("%w: %d×%d pixels would take %d MiB to decode", ErrTooLarge, h.width, h.height, int(cost)>>20)
	}
	if progressive {
		if n := exifScans(bufio.NewReader(io.NewSectionReader(src, 0, size)), thumbMaxScans); n > thumbMaxScans {
			return thumbHeader{}, fmt.Errorf("%w: a progressive JPEG of more than %d scans", ErrTooLarge, thumbMaxScans)
		}
	}
	return h, nil
}

// thumbCost estimates the bytes per source pixel that decoding and
// halving the picture hold, from its header, and tells whether it is a
// progressive JPEG (or one whose frame header was not found, which might
// be); for a JPEG it also reads the Exif orientation into h.
func thumbCost(typ string, head []byte, cfg image.Config, h *thumbHeader) (perPixel float64, progressive bool) {
	// Halving steps hold a quarter, a sixteenth... of the picture at 4
	// bytes a pixel (4/3 of a byte per source pixel), and decoders
	// their row buffers.
	const halving = 2
	switch typ {
	case "image/jpeg":
		j := exifScan(head)
		h.orientation = j.orientation
		return thumbJPEGCost(j, cfg) + halving, j.progressive || !j.frame
	case "image/png":
		bpp := 8.0
		switch cfg.ColorModel {
		case color.GrayModel:
			bpp = 1
		case color.Gray16Model:
			bpp = 2
		case color.RGBAModel, color.NRGBAModel:
			bpp = 4
		default:
			if _, ok := cfg.ColorModel.(color.Palette); ok {
				bpp = 1
			}
		}
		// An interlaced PNG holds each pass's picture besides the whole.
		if len(head) > 28 && head[28] == 1 {
			bpp *= 2
		}
		return bpp + halving, false
	case "image/gif":
		return 2 + halving, false // the paletted frame and its LZW output
	default: // WebP
		// Lossy: Y'CbCr 4:2:0. Lossless (or lossy with a lossless
		// alpha plane, or VP8X, where either may follow): 32-bit ARGB
		// words, transforms, then NRGBA.
		if len(head) >= 16 && string(head[12:16]) == "VP8 " {
			return 2 + halving, false
		}
		return 12 + halving, false
	}
}

// thumbJPEGCost is the bytes per pixel Go's JPEG decoder holds: a byte
// per sample of each component (subsampled planes are smaller), four
// more per sample for a progressive file's coefficients, and a CMYK
// picture's conversion. Without a frame header found in the head it
// assumes the worst of a full-resolution progressive file.
func thumbJPEGCost(j exifJPEG, cfg image.Config) float64 {
	nc := 3.0
	switch cfg.ColorModel {
	case color.GrayModel:
		nc = 1
	case color.CMYKModel:
		nc = 4
	}
	if !j.frame || len(j.components) == 0 {
		return nc*5 + 4
	}
	hmax, vmax := 1, 1
	for _, c := range j.components {
		if c[0] < 1 || c[0] > 4 || c[1] < 1 || c[1] > 4 {
			return nc*5 + 4 // the decoder will refuse it; stay pessimistic
		}
		hmax, vmax = max(hmax, c[0]), max(vmax, c[1])
	}
	samples := 0.0
	for _, c := range j.components {
		samples += float64(c[0]*c[1]) / float64(hmax*vmax)
	}
	samples *= 1.1 // planes are padded to whole blocks
	cost := samples
	if j.progressive {
		cost += 4 * samples
	}
	if len(j.components) == 4 {
		cost += 4 // converted to CMYK
	}
	if len(j.components) == 3 && hmax == 1 && vmax == 1 {
		cost += 4 // perhaps an RGB file, converted to RGBA
	}
	return cost
}

// thumbEnter waits for a turn to decode, or refuses when too many wait.
func thumbEnter() error {
	if thumbQueued.Add(1) > thumbRunning+thumbWaiting {
		thumbQueued.Add(-1)
		return ErrThumbBusy
	}
	thumbTurn <- struct{}{}
	return nil
}

func thumbLeave() {
	<-thumbTurn
	thumbQueued.Add(-1)
}

// thumbDecode decodes the first picture of a file whose format was
// sniffed. A decoder's panic on hostile input is an ErrNotImage.
func thumbDecode(typ string, r io.Reader) (image.Image, error) {
	var decode func(io.Reader) (image.Image, error)
	switch typ {
	case "image/jpeg":
		decode = jpeg.Decode
	case "image/png":
		decode = png.Decode
	case "image/gif":
		decode = gif.Decode // stops after the first frame
	case "image/webp":
		decode = webp.Decode
	default:
		return nil, ErrNotImage
	}
	img, err := thumbSafely(func() (image.Image, error) { return decode(r) })
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotImage, err)
	}
	if b := img.Bounds(); b.Empty() {
		return nil, ErrNotImage
	}
	return img, nil
}

// thumbSafely runs f, turning a panic into an error.
func thumbSafely[T any](f func() (T, error)) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decoder panicked: %v", r)
		}
	}()
	return f()
}

// thumbResize makes the thumbnail of img for a width × height box as
// shown, img being stored under Exif orientation o.
func thumbResize(img image.Image, width, height int, method string, o int) *image.RGBA {
	// Work in the stored orientation, turn the small result at the end.
	if exifSwapsAxes(o) {
		width, height = height, width
	}
	sb := img.Bounds()
	sw, sh := float64(sb.Dx()), float64(sb.Dy())
	tw, th := float64(width), float64(height)
	sr := sb // the part of the source the thumbnail shows
	var ow, oh int
	if method == "crop" {
		s := max(tw/sw, th/sh) // cover the box
		if s > 1 {
			// Too small to cover: keep the box's aspect, full size.
			k := min(sw/tw, sh/th)
			tw, th, s = tw*k, th*k, 1
		}
		ow, oh = max(1, int(math.Round(tw))), max(1, int(math.Round(th)))
		cw := min(sb.Dx(), max(1, int(math.Round(float64(ow)/s))))
		ch := min(sb.Dy(), max(1, int(math.Round(float64(oh)/s))))
		x0 := sb.Min.X + (sb.Dx()-cw)/2
		y0 := sb.Min.Y + (sb.Dy()-ch)/2
		sr = image.Rect(x0, y0, x0+cw, y0+ch)
	} else {
		f := min(tw/sw, th/sh, 1) // fit inside the box, never enlarge
		ow, oh = max(1, int(math.Round(sw*f))), max(1, int(math.Round(sh*f)))
	}
	return exifApply(thumbScale(img, sr, ow, oh), o)
}

// thumbScale scales the sr part of img to ow × oh: halving steps, each
// averaging 2×2 blocks, while the source is at least twice the target,
// then one CatmullRom step for quality, or ApproxBiLinear when
// CatmullRom's scratch buffer would pass thumbMaxKernelTmp.
func thumbScale(img image.Image, sr image.Rectangle, ow, oh int) *image.RGBA {
	for sr.Dx() >= 2*ow && sr.Dy() >= 2*oh && sr.Dx() >= 2 && sr.Dy() >= 2 {
		img = thumbHalve(img, sr)
		sr = img.Bounds()
	}
	dst := image.NewRGBA(image.Rect(0, 0, ow, oh))
	switch {
	case sr.Dx() == ow && sr.Dy() == oh:
		draw.Draw(dst, dst.Bounds(), img, sr.Min, draw.Src)
	case 32*ow*sr.Dy() <= thumbMaxKernelTmp:
		draw.CatmullRom.Scale(dst, dst.Bounds(), img, sr, draw.Src, nil)
	default:
		draw.ApproxBiLinear.Scale(dst, dst.Bounds(), img, sr, draw.Src, nil)
	}
	return dst
}

// thumbHalve is the sr part of img at half its size, each pixel the
// average of a 2×2 block. A JPEG's Y'CbCr or grey picture is halved in
// its own planes (a byte average, no colour conversion: the first
// halving of a camera photo is the costliest step), a GIF's paletted
// frame through its palette into RGBA; anything else goes through
// ApproxBiLinear, which at exactly one half averages the same four
// pixels, into RGBA.
func thumbHalve(img image.Image, sr image.Rectangle) image.Image {
	dw, dh := sr.Dx()/2, sr.Dy()/2
	switch src := img.(type) {
	case *image.YCbCr:
		dst := image.NewYCbCr(image.Rect(0, 0, dw, dh), src.SubsampleRatio)
		for y := 0; y < dh; y++ {
			top := src.Y[src.YOffset(sr.Min.X, sr.Min.Y+2*y):]
			bottom := top[src.YStride:]
			row := dst.Y[y*dst.YStride : y*dst.YStride+dw]
			for x := range row {
				row[x] = thumbAvg4(top[2*x], top[2*x+1], bottom[2*x], bottom[2*x+1])
			}
		}
		// Each chroma sample of dst covers two of src's each way.
		hs, vs := thumbChromaStep(src.SubsampleRatio)
		for y := 0; y < dh; y += vs {
			sy0 := sr.Min.Y + 2*y
			sy1 := min(sy0+vs, sr.Max.Y-1)
			for x := 0; x < dw; x += hs {
				sx0 := sr.Min.X + 2*x
				sx1 := min(sx0+hs, sr.Max.X-1)
				a, b := src.COffset(sx0, sy0), src.COffset(sx1, sy0)
				c, d := src.COffset(sx0, sy1), src.COffset(sx1, sy1)
				k := dst.COffset(x, y)
				dst.Cb[k] = thumbAvg4(src.Cb[a], src.Cb[b], src.Cb[c], src.Cb[d])
				dst.Cr[k] = thumbAvg4(src.Cr[a], src.Cr[b], src.Cr[c], src.Cr[d])
			}
		}
		return dst
	case *image.Gray:
		dst := image.NewGray(image.Rect(0, 0, dw, dh))
		for y := 0; y < dh; y++ {
			for x := 0; x < dw; x++ {
				i := src.PixOffset(sr.Min.X+2*x, sr.Min.Y+2*y)
				j := i + src.Stride
				dst.Pix[y*dst.Stride+x] = thumbAvg4(src.Pix[i], src.Pix[i+1], src.Pix[j], src.Pix[j+1])
			}
		}
		return dst
	case *image.Paletted:
		// A GIF frame: look colours up once, average in premultiplied
		// RGBA (draw has no fast path for paletted sources).
		var pal [256][4]uint8
		for i, c := range src.Palette {
			if i == len(pal) {
				break
			}
			r, g, b, a := c.RGBA()
			pal[i] = [4]uint8{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), uint8(a >> 8)}
		}
		dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
		for y := 0; y < dh; y++ {
			top := src.Pix[src.PixOffset(sr.Min.X, sr.Min.Y+2*y):]
			bottom := top[src.Stride:]
			row := dst.Pix[y*dst.Stride : y*dst.Stride+4*dw]
			for x := 0; x < dw; x++ {
				a, b := &pal[top[2*x]], &pal[top[2*x+1]]
				c, d := &pal[bottom[2*x]], &pal[bottom[2*x+1]]
				for k := 0; k < 4; k++ {
					row[4*x+k] = thumbAvg4(a[k], b[k], c[k], d[k])
				}
			}
		}
		return dst
	}
	half := image.NewRGBA(image.Rect(0, 0, dw, dh))
	draw.ApproxBiLinear.Scale(half, half.Bounds(), img, sr, draw.Src, nil)
	return half
}

func thumbAvg4(a, b, c, d uint8) uint8 {
	return uint8((uint(a) + uint(b) + uint(c) + uint(d) + 2) / 4)
}

// thumbChromaStep is how many luma pixels, across and down, share one
// chroma sample under a subsampling ratio.
func thumbChromaStep(r image.YCbCrSubsampleRatio) (h, v int) {
	switch r {
	case image.YCbCrSubsampleRatio422:
		return 2, 1
	case image.YCbCrSubsampleRatio420:
		return 2, 2
	case image.YCbCrSubsampleRatio440:
		return 1, 2
	case image.YCbCrSubsampleRatio411:
		return 4, 1
	case image.YCbCrSubsampleRatio410:
		return 4, 2
	}
	return 1, 1
}
