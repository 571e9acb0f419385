package audit

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/bits"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Asciicast v2 event codes.
const (
	CodeOutput = "o" // what the terminal showed: stdout and stderr
	CodeInput  = "i" // what the client typed: stdin
	CodeResize = "r" // a terminal size change, data "COLSxROWS"
)

// maxEscape is the longest encoding of one input byte or rune in a JSON
// string: a control byte as \u00XX.
const maxEscape = 6

// jsonSafe[b] is true for the ASCII bytes that go into a JSON string as
// they are.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// Byte-lane constants for unsafeLanes: each byte of the word 0x01 or 0x80.
const (
	lanesLow  = 0x0101010101010101
	lanesHigh = 0x8080808080808080
)

// unsafeLanes flags the bytes of the little-endian word x that are not
// JSON-safe ASCII: a byte with its high bit set (not ASCII), under 0x20, or
// a quote or a backslash ((v - 0x01..) & ^v & 0x80.. flags a byte of v that
// is zero, and with 0x20.. one under 0x20). A borrow may also flag a byte
// above a flagged one, never one below: the lowest flagged byte is exact,
// and x is all safe when nothing is flagged.
func unsafeLanes(x uint64) uint64 {
	q := x ^ lanesLow*'"'
	bs := x ^ lanesLow*'\\'
	return (x | (x-lanesLow*0x20)&^x | (q-lanesLow)&^q | (bs-lanesLow)&^bs) & lanesHigh
}

// safeRun returns how many bytes at the start of p are JSON-safe ASCII,
// eight at a time.
func safeRun(p []byte) int {
	n := 0
	for ; len(p)-n >= 8; n += 8 {
		if m := unsafeLanes(binary.LittleEndian.Uint64(p[n:])); m != 0 {
			return n + bits.TrailingZeros64(m)/8
		}
	}
	for n < len(p) && p[n] < utf8.RuneSelf && jsonSafe[p[n]] {
		n++
	}
	return n
}

// shortEscape[b] is the letter of b's two-byte JSON escape (\n for a
// newline), or 0 if b has none.
var shortEscape = [utf8.RuneSelf]byte{'"': '"', '\\': '\\', '\n': 'n', '\r': 'r', '\t': 't', '\b': 'b', '\f': 'f'}

// appendEventPrefix appends `[t, "code", "` for an event at offset d from
// the start of the recording: t is in seconds with microsecond precision.
func appendEventPrefix(dst []byte, d time.Duration, code string) []byte {
	return appendTimeCode(append(dst, '['), d, code)
}

// appendTimeCode appends `t, "code", "`.
func appendTimeCode(dst []byte, d time.Duration, code string) []byte {
	dst = appendSeconds(dst, d)
	dst = append(dst, ", \""...)
	dst = append(dst, code...)
	return append(dst, "\", \""...)
}

// appendSeconds appends d as seconds with six decimals, the precision
// asciinema itself writes.
func appendSeconds(dst []byte, d time.Duration) []byte {
	return strconv.AppendFloat(dst, d.Round(time.Microsecond).Seconds(), 'f', 6, 64)
}

// eventSuffix closes the data string, the event array and its line.
const eventSuffix = "\"]\n"

// appendText appends the JSON string body (no quotes) for as much of p as
// fits in dst's capacity, replacing each byte that is not part of valid
// UTF-8 with U+FFFD. It returns the extended dst, how many bytes of p it
// consumed, and whether any of them were invalid.
//
// It consumes p a rune at a time, so a cut between two calls falls on a
// rune boundary and decodes as the whole would.
//
// It works in place in dst's spare capacity, byte by byte; within a run of
// safe bytes it copies eight at a time, keeping those up to the first
// unsafe one. Output such as `yes` prints needs an escape every other
// byte, so the run must have begun before words are tried, and a safe byte
// followed by a two-byte escape is taken in one turn of the loop. Bytes
// past the returned length may be overwritten.
func appendText(dst, p []byte) (out []byte, n int, invalid bool) {
	w, buf := len(dst), dst[:cap(dst)]
	run := 0 // safe bytes copied one at a time since the last unsafe one
	for n < len(p) && len(buf)-w >= maxEscape {
		b := p[n]
		if b < utf8.RuneSelf && jsonSafe[b] {
			if run < 2 || len(p)-n < 8 || len(buf)-w < 8 {
				buf[w] = b
				n, w, run = n+1, w+1, run+1
				// A two-byte escape right after a safe byte (the newline
				// of "y\n", a line's end) is taken in the same turn: the
				// room checked above holds both.
				if n < len(p) && p[n] < utf8.RuneSelf {
					if e := shortEscape[p[n]]; e != 0 {
						buf[w], buf[w+1] = '\\', e
						n, w, run = n+1, w+2, 0
					}
				}
				continue
			}
			x := binary.LittleEndian.Uint64(p[n:])
			binary.LittleEndian.PutUint64(buf[w:], x)
			k := 8
			if m := unsafeLanes(x); m != 0 {
				k = bits.TrailingZeros64(m) / 8
			}
			n, w = n+k, w+k
			continue
		}
		run = 0
		switch {
		case b < utf8.RuneSelf && shortEscape[b] != 0:
			buf[w], buf[w+1] = '\\', shortEscape[b]
			n, w = n+1, w+2
		case b < utf8.RuneSelf:
			copy(buf[w:], []byte{'\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf]})
			n, w = n+1, w+6
		default:
			r, size := utf8.DecodeRune(p[n:])
			if r == utf8.RuneError && size == 1 {
				w += utf8.EncodeRune(buf[w:], utf8.RuneError)
				invalid = true
			} else {
				w += copy(buf[w:], p[n:n+size])
			}
			n += size
		}
	}
	return buf[:w], n, invalid
}

// writeText writes the JSON string body for p to w through w's own buffer,
// so memory stays bounded by that buffer whatever len(p) is. It reports
// whether p held invalid UTF-8. An error is the one w hit (and keeps).
func writeText(w *bufio.Writer, p []byte) (invalid bool, err error) {
	for len(p) > 0 {
		if w.Available() < maxEscape {
			if err := w.Flush(); err != nil {
				return invalid, err
			}
		}
		buf, n, inv := appendText(w.AvailableBuffer(), p)
		invalid = invalid || inv
		if _, err := w.Write(buf); err != nil {
			return invalid, err
		}
		p = p[n:]
	}
	return invalid, nil
}

// encodeHeader returns the header line, newline included.
func encodeHeader(h CastHeader) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(h); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// shellJoin joins argv into one command line a POSIX shell would split
// back into argv: words of safe characters go as they are, the others in
// single quotes.
func shellJoin(argv []string) string {
	var b strings.Builder
	for i, arg := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		if arg != "" && strings.Trim(arg, shellSafe) == "" {
			b.WriteString(arg)
			continue
		}
		b.WriteByte('\'')
		b.WriteString(strings.ReplaceAll(arg, "'", `'\''`))
		b.WriteByte('\'')
	}
	return b.String()
}

const shellSafe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_"
