package upgrade

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/moby/spdystream/spdy"
)

// pfHeaderBomb is the largest SYN_STREAM of NUL-filled header values (each
// NUL splits a value once more) whose frame is at most limit bytes.
func pfHeaderBomb(t *testing.T, limit int) []byte {
	t.Helper()
	h := http.Header{}
	var wire []byte
	for i := 0; ; i++ {
		name := fmt.Sprintf("h%d", i)
		h[name] = []string{strings.Repeat("\x00", 1<<20-1)}
		next := spdyWire(t, &spdy.SynStreamFrame{StreamId: 1, Headers: h})
		if len(next) > limit {
			if i == 0 {
				for n := 1 << 20; len(next) > limit; n /= 2 {
					h[name] = []string{strings.Repeat("\x00", n)}
					next = spdyWire(t, &spdy.SynStreamFrame{StreamId: 1, Headers: h})
				}
				return next
			}
			return wire
		}
		wire = next
	}
}

// TestPortForwardHeaderBombBounded: a port-forward client's SPDY header
// block is read by cri-streaming's server with spdystream's default
// limits, so kubegate bounds its control frames: a larger one is refused
// before spdystream sees it, and the largest header bomb taken costs
// spdystream a bounded amount to read (a 64 KiB one cost 6.6 GiB).
func TestPortForwardHeaderBombBounded(t *testing.T) {
	noise := make([]byte, 2*portForwardMaxControlFrame)
	_, _ = rand.Read(noise)
	big := spdyWire(t, &spdy.SynStreamFrame{StreamId: 1, Headers: http.Header{"h": {hex.EncodeToString(noise)}}})
	fr, err := spdy.NewFramer(io.Discard, &spdyFrameReader{r: bytes.NewReader(big), maxControl: portForwardMaxControlFrame})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fr.ReadFrame(); !errors.Is(err, ErrSPDYFrameTooLarge) {
		t.Fatalf("a %d-byte SYN_STREAM: %v, want ErrSPDYFrameTooLarge", len(big), err)
	}

	small := pfHeaderBomb(t, 8+portForwardMaxControlFrame)
	fr, err = spdy.NewFramer(io.Discard, &spdyFrameReader{r: bytes.NewReader(small), maxControl: portForwardMaxControlFrame})
	if err != nil {
		t.Fatal(err)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	_, err = fr.ReadFrame()
	runtime.ReadMemStats(&ms)
	const bound = 256 << 20
	if grew := ms.TotalAlloc - before; grew > bound {
		t.Errorf("reading a %d-byte header bomb allocated %d MiB, want under %d MiB", len(small), grew>>20, bound>>20)
	} else {
		t.Logf("a %d-byte header bomb: %d MiB allocated (%v)", len(small), grew>>20, err)
	}
}
