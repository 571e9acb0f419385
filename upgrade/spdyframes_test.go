package upgrade

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/moby/spdystream/spdy"
)

// spdyFrame is a frame header and payload: a data frame for stream id, or
// a control frame when control is set.
func spdyFrame(control bool, length int) []byte {
	hdr := make([]byte, 8)
	if control {
		copy(hdr, []byte{0x80, 3, 0, 1}) // SYN_STREAM, version 3
	} else {
		binary.BigEndian.PutUint32(hdr, 1) // stream 1
	}
	hdr[5], hdr[6], hdr[7] = byte(length>>16), byte(length>>8), byte(length)
	return append(hdr, make([]byte, length)...)
}

// spdyControl is a control frame of type typ with a zero payload of length
// bytes.
func spdyControl(typ spdy.ControlFrameType, length int) []byte {
	f := spdyFrame(true, length)
	binary.BigEndian.PutUint16(f[2:], uint16(typ))
	return f
}

// spdySettings is a SETTINGS frame of length bytes that counts n entries.
func spdySettings(n uint32, length int) []byte {
	f := spdyControl(spdy.TypeSettings, length)
	binary.BigEndian.PutUint32(f[8:], n)
	return f
}

var spdyFrameCheckCases = []struct {
	name   string
	wire   []byte
	reject bool
}{
	{"empty", nil, false},
	{"data frame at the limit", spdyFrame(false, spdyMaxDataFrame), false},
	{"data frame over the limit", spdyFrame(false, spdyMaxDataFrame+1), true},
	{"control frame at the limit", spdyFrame(true, spdyMaxControlFrame), false},
	{"control frame over the limit", spdyFrame(true, spdyMaxControlFrame+1), true},
	{"largest SPDY data frame", spdyFrame(false, 1<<24-1)[:8], true},
	{"zero-length data frame", spdyFrame(false, 0), false},
	{"zero-length SYN_STREAM", spdyFrame(true, 0), true},
	// Control frames whose length differs from what spdystream reads of
	// them: the rest would be taken for the next frame's header, unchecked
	// (found by FuzzSPDYFrames).
	{"RST_STREAM of 12 bytes", spdyControl(spdy.TypeRstStream, 12), true},
	{"PING of 8 bytes", spdyControl(spdy.TypePing, 8), true},
	{"SYN_REPLY of 2 bytes", spdyControl(spdy.TypeSynReply, 2), true},
	{"SETTINGS longer than its entries", spdySettings(1, 20), true},
	{"SETTINGS without its count", spdyControl(spdy.TypeSettings, 2), true},
	{"fixed-size frames", slices.Concat(spdyControl(spdy.TypeRstStream, 8), spdyControl(spdy.TypePing, 4),
		spdyControl(spdy.TypeWindowUpdate, 8), spdyControl(spdy.TypeGoAway, 8), spdySettings(2, 20), spdySettings(0, 4)), false},
	{"small frames then a large one", append(append(spdyFrame(true, 10), spdyFrame(false, 100)...), spdyFrame(false, spdyMaxDataFrame+1)...), true},
	{"half a header", spdyFrame(false, spdyMaxDataFrame+1)[:5], false},
}

// checkWhole is the dumb version of spdyFrameReader.check: all of wire in
// one call.
func checkWhole(wire []byte) error {
	return (&spdyFrameReader{}).check(wire)
}

// checkSplit feeds wire to one checker in pieces cut at cuts.
func checkSplit(wire []byte, cuts []int) error {
	c := &spdyFrameReader{}
	prev := 0
	for _, cut := range append(cuts, len(wire)) {
		cut = min(max(cut, prev), len(wire))
		if err := c.check(wire[prev:cut]); err != nil {
			return err
		}
		prev = cut
	}
	return nil
}

func TestSPDYFrameCheck(t *testing.T) {
	for _, tc := range spdyFrameCheckCases {
		t.Run(tc.name, func(t *testing.T) {
			for _, cuts := range [][]int{nil, {1}, {7, 8, 9}, {3, 11, 12, 40}} {
				err := checkSplit(tc.wire, cuts)
				if (err != nil) != tc.reject || err != nil && !errors.Is(err, ErrSPDYFrameTooLarge) && !errors.Is(err, ErrSPDYFrameMalformed) {
					t.Errorf("cut at %v: %v, want rejected %t", cuts, err, tc.reject)
				}
			}
		})
	}
}

// FuzzSPDYFrameCheck: however the bytes are cut into reads, the verdict is
// the same as for all of them at once.
func FuzzSPDYFrameCheck(f *testing.F) {
	for _, tc := range spdyFrameCheckCases {
		if len(tc.wire) < 4096 {
			f.Add(tc.wire, uint16(3), uint16(9))
		}
	}
	f.Fuzz(func(t *testing.T, wire []byte, a, b uint16) {
		whole := checkWhole(wire)
		split := checkSplit(wire, []int{int(a) % (len(wire) + 1), int(b) % (len(wire) + 1)})
		if (whole == nil) != (split == nil) {
			t.Fatalf("whole: %v, split at %d,%d: %v", whole, a, b, split)
		}
	})
}
