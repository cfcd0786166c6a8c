package media

import (
	"bytes"
	"encoding/binary"
	"image"
	"io"
)

// exifJPEG is what the thumbnailer learns from a JPEG's header segments,
// read before anything is decoded.
type exifJPEG struct {
	// orientation is the Exif Orientation tag, 1..8 (1 when absent or
	// out of range).
	orientation int
	// frame is true when a start-of-frame segment was found; the fields
	// below are meaningful only then.
	frame       bool
	progressive bool
	// components holds each component's horizontal and vertical
	// sampling factors.
	components [][2]int
}

// exifScan walks the marker segments at the head of a JPEG up to the
// first start of frame (or start of scan, or the end of head), reading
// the first Exif APP1 segment's orientation and the frame's layout.
// Every length and offset comes from the file, so every read is checked
// against the slice it reads; a malformed header yields what was read
// before the fault, never a panic.
func exifScan(head []byte) exifJPEG {
	out := exifJPEG{orientation: 1}
	if len(head) < 2 || head[0] != 0xFF || head[1] != 0xD8 {
		return out
	}
	seenExif := false
	p := 2
	for p < len(head) {
		if head[p] != 0xFF {
			return out // not at a marker: a broken file
		}
		// Any number of 0xFF fill bytes may precede a marker.
		for p < len(head) && head[p] == 0xFF {
			p++
		}
		if p >= len(head) {
			return out
		}
		m := head[p]
		p++
		switch {
		case m == 0x01 || m == 0xD8 || (m >= 0xD0 && m <= 0xD7):
			continue // standalone markers carry no length
		case m == 0xD9 || m == 0xDA:
			return out // end of image, or the scan begins: no header left
		}
		if p+2 > len(head) {
			return out
		}
		n := int(binary.BigEndian.Uint16(head[p:]))
		if n < 2 || p+n > len(head) {
			return out
		}
		seg := head[p+2 : p+n]
		p += n
		switch {
		case m == 0xE1 && !seenExif && bytes.HasPrefix(seg, []byte("Exif\x00\x00")):
			seenExif = true
			out.orientation = exifOrientation(seg[6:])
		case m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC:
			out.frame = true
			out.progressive = m == 0xC2 || m == 0xC6 || m == 0xCA || m == 0xCE
			// precision(1) height(2) width(2) count(1), then per
			// component: id(1) sampling(1) table(1).
			if len(seg) >= 6 {
				nc := int(seg[5])
				for i := 0; i < nc && 6+3*i+2 < len(seg); i++ {
					hv := seg[6+3*i+1]
					out.components = append(out.components, [2]int{int(hv >> 4), int(hv & 15)})
				}
			}
			return out
		}
	}
	return out
}

// exifOrientation reads tag 0x0112 from IFD0 of a TIFF structure (the
// body of an Exif segment after its "Exif\0\0" header). 1 when absent,
// malformed or out of 1..8.
func exifOrientation(tiff []byte) int {
	if len(tiff) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch {
	case tiff[0] == 'I' && tiff[1] == 'I':
		bo = binary.LittleEndian
	case tiff[0] == 'M' && tiff[1] == 'M':
		bo = binary.BigEndian
	default:
		return 1
	}
	if bo.Uint16(tiff[2:]) != 42 {
		return 1
	}
	ifd := uint64(bo.Uint32(tiff[4:]))
	if ifd < 8 || ifd+2 > uint64(len(tiff)) {
		return 1
	}
	count := int(bo.Uint16(tiff[ifd:]))
	entries := tiff[ifd+2:]
	for i := 0; i < count && 12*i+12 <= len(entries); i++ {
		e := entries[12*i : 12*i+12]
		if bo.Uint16(e[0:]) != 0x0112 {
			continue
		}
		// type SHORT (3), count 1: the value sits in the first two bytes
		// of the value field, in the file's byte order.
		if bo.Uint16(e[2:]) != 3 || bo.Uint32(e[4:]) != 1 {
			return 1
		}
		if v := int(bo.Uint16(e[8:])); v >= 1 && v <= 8 {
			return v
		}
		return 1
	}
	return 1
}

// exifSwapsAxes tells whether an orientation turns the picture a quarter
// turn, so that its displayed width is its stored height.
func exifSwapsAxes(o int) bool { return o >= 5 && o <= 8 }

// exifApply returns img as it is meant to be seen under Exif orientation
// o: mirrored, turned or both (a new image for 2..8, img itself for 1).
func exifApply(img *image.RGBA, o int) *image.RGBA {
	if o < 2 || o > 8 {
		return img
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	dw, dh := w, h
	if exifSwapsAxes(o) {
		dw, dh = h, w
	}
	out := image.NewRGBA(image.Rect(0, 0, dw, dh))
	for y := 0; y < dh; y++ {
		for x := 0; x < dw; x++ {
			// (sx, sy): the stored pixel shown at (x, y).
			var sx, sy int
			switch o {
			case 2: // mirrored left to right
				sx, sy = w-1-x, y
			case 3: // turned half a turn
				sx, sy = w-1-x, h-1-y
			case 4: // mirrored top to bottom
				sx, sy = x, h-1-y
			case 5: // transposed
				sx, sy = y, x
			case 6: // to be turned a quarter clockwise
				sx, sy = y, h-1-x
			case 7: // transversed
				sx, sy = w-1-y, h-1-x
			case 8: // to be turned a quarter anticlockwise
				sx, sy = w-1-y, x
			}
			si := img.PixOffset(b.Min.X+sx, b.Min.Y+sy)
			di := out.PixOffset(x, y)
			copy(out.Pix[di:di+4], img.Pix[si:si+4])
		}
	}
	return out
}

// exifScans counts the scans (start-of-scan segments) of a JPEG read from
// r, stopping once past limit. Go's decoder passes over every block of
// the picture for each scan of a progressive file, and a scan can cost
// ten bytes of file (an end-of-band run covers thousands of blocks), so
// a small file could hold the decoder for hours; the thumbnailer refuses
// one with too many scans before decoding. The walk follows segment
// lengths and skips entropy-coded data (where 0xFF is always followed by
// a stuffed zero or a restart marker), so markers inside Exif thumbnails
// or other segments are not counted. A malformed file ends the count
// where it breaks: the decoder will refuse it.
func exifScans(r io.ByteReader, limit int) int {
	read := func() int {
		c, err := r.ReadByte()
		if err != nil {
			return -1
		}
		return int(c)
	}
	// marker reads a marker where one must start: 0xFF, any fill
	// bytes, then its code.
	marker := func() int {
		c := read()
		if c != 0xFF {
			return -1
		}
		for c == 0xFF {
			c = read()
		}
		return c
	}
	// entropy skips entropy-coded data and answers the code of the
	// marker that ends it.
	entropy := func() int {
		for {
			c := read()
			if c != 0xFF {
				if c < 0 {
					return -1
				}
				continue
			}
			for c == 0xFF {
				c = read()
			}
			if c != 0x00 && (c < 0xD0 || c > 0xD7) {
				return c // a real marker, or -1 at the end
			}
		}
	}
	if read() != 0xFF || read() != 0xD8 {
		return 0
	}
	scans := 0
	for m := marker(); m >= 0 && scans <= limit; {
		switch {
		case m == 0xD9:
			return scans
		case m == 0x01 || m == 0xD8 || (m >= 0xD0 && m <= 0xD7):
			m = marker()
			continue
		}
		hi, lo := read(), read()
		if hi < 0 || lo < 0 || hi<<8|lo < 2 {
			return scans
		}
		for i := 2; i < hi<<8|lo; i++ {
			if read() < 0 {
				return scans
			}
		}
		if m != 0xDA {
			m = marker()
			continue
		}
		scans++
		m = entropy()
	}
	return scans
}
