package audit

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"
)

// utf8Cases are streams of chunks, what the .cast should hold for them,
// and which events go to the raw sidecar. Shared with the fuzz tests.
var utf8Cases = []struct {
	name   string
	chunks []string
	events []string // data of the "o" events, the last one possibly from Close
	raw    []int    // indexes of the events with invalid bytes
}{
	{"ascii", []string{"abc", "def"}, []string{"abc", "def"}, nil},
	{"two bytes split", []string{"h\xc3", "\xa9llo"}, []string{"h", "éllo"}, nil},
	{"three bytes split twice", []string{"\xe2", "\x82", "\xac!"}, []string{"€!"}, nil},
	{"four bytes split", []string{"a\xf0\x9f", "\x98\x80"}, []string{"a", "😀"}, nil},
	{"one byte chunks", []string{"\xf0", "\x9f", "\x98", "\x80"}, []string{"😀"}, nil},
	{"invalid byte", []string{"a\xffb"}, []string{"a\ufffdb"}, []int{0}},
	{"cut sequence, then ascii", []string{"\xe2\x82", "a"}, []string{"\ufffd\ufffda"}, []int{0}},
	{"incomplete at close", []string{"x\xe2\x82"}, []string{"x", "\ufffd\ufffd"}, []int{1}},
	{"surrogate", []string{"\xed\xa0\x80"}, []string{"\ufffd\ufffd\ufffd"}, []int{0}},
	{"overlong", []string{"\xc0\xaf"}, []string{"\ufffd\ufffd"}, []int{0}},
	{"stray continuations", []string{"\x80\x80\x80\x80\x80"}, []string{"\ufffd\ufffd\ufffd\ufffd\ufffd"}, []int{0}},
	{"long chunk completes the carry", []string{"\xe2\x82", "\xac" + strings.Repeat("a", 40) + "\xc3"}, []string{"€" + strings.Repeat("a", 40), "\ufffd"}, []int{1}},
	{"long chunk of continuations after the carry", []string{"\xf0", "\x9f\x98\x80\x80" + strings.Repeat("b", 20)}, []string{"😀\ufffd" + strings.Repeat("b", 20)}, []int{0}},
	{"long chunk ends split", []string{strings.Repeat("é", 20) + "\xf0\x9f\x98", "\x80"}, []string{strings.Repeat("é", 20), "😀"}, nil},
}

func TestRecordingUTF8(t *testing.T) {
	for _, tc := range utf8Cases {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := record(t, RecordingConfig{})
			var all []byte
			for _, ch := range tc.chunks {
				if err := r.Output([]byte(ch)); err != nil {
					t.Fatal(err)
				}
				all = append(all, ch...)
			}
			sum := closeRecording(t, r)
			c := readCast(t, sum.Path)
			var got []string
			for _, ev := range c.Events {
				got = append(got, ev.Data)
			}
			if !reflect.DeepEqual(got, tc.events) {
				t.Errorf("events %q, want %q", got, tc.events)
			}
			if want := string([]rune(string(all))); c.Output() != want {
				t.Errorf("Output %q, want %q", c.Output(), want)
			}

			// The raw sidecar holds the exact bytes of the events it names.
			if (sum.RawPath != "") != (len(tc.raw) > 0) {
				t.Fatalf("RawPath = %q with raw events %v", sum.RawPath, tc.raw)
			}
			if sum.RawPath == "" {
				return
			}
			f, err := os.Open(sum.RawPath)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			chunks, err := ParseRaw(f)
			if err != nil {
				t.Fatal(err)
			}
			var idx []int
			for _, ch := range chunks {
				idx = append(idx, ch.Event)
				if ev := c.Events[ch.Event]; ch.Time != ev.Time || ch.Code != ev.Code {
					t.Errorf("raw chunk %+v does not match its event %+v", ch, ev)
				}
			}
			if !reflect.DeepEqual(idx, tc.raw) {
				t.Errorf("raw events %v, want %v", idx, tc.raw)
			}
			if err := c.ApplyRaw(chunks); err != nil {
				t.Fatal(err)
			}
			if c.Output() != string(all) {
				t.Errorf("Output after ApplyRaw %q, want %q", c.Output(), all)
			}
		})
	}
}

// TestRecordingUTF8PerStream checks that each stream completes its own
// sequences: a stderr chunk between two halves of a stdout rune does not
// break it.
func TestRecordingUTF8PerStream(t *testing.T) {
	r, _ := record(t, RecordingConfig{})
	r.Output([]byte("\xc3"))
	r.Input([]byte("\xe2\x82"))
	r.ErrorOutput([]byte("\xf0\x9f"))
	r.Output([]byte("\xa9"))
	r.ErrorOutput([]byte("\x98\x80"))
	r.Input([]byte("\xac"))
	sum := closeRecording(t, r)
	var got []CastEvent
	for _, ev := range readCast(t, sum.Path).Events {
		got = append(got, CastEvent{Code: ev.Code, Data: ev.Data})
	}
	want := []CastEvent{{Code: "o", Data: "é"}, {Code: "o", Data: "😀"}, {Code: "i", Data: "€"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events %+v, want %+v", got, want)
	}
}

// TestUTF8CarryAgainstWhole checks split against the dumb way, decoding
// the stream whole: for every way to cut a stream in three, what split
// hands out, plus what take returns, is the stream byte for byte, and
// decodes the same piece by piece.
func TestUTF8CarryAgainstWhole(t *testing.T) {
	streams := []string{
		"plain ascii text, long enough for the long path",
		"é€😀 mixed ü and 中文 text 😀😀",
		"bad \xff\xfe, cut \xe2\x82 and \xf0\x9f\x98 surrogate \xed\xa0\x80 overlong \xc0\xaf stray \x80\x80\x80\x80 end \xe2",
	}
	for _, s := range streams {
		for i := 0; i <= len(s); i++ {
			for j := i; j <= len(s); j++ {
				var c utf8Carry
				var scratch [smallChunk]byte
				var got []byte
				var decoded strings.Builder
				emit := func(parts ...[]byte) {
					for _, p := range parts {
						got = append(got, p...)
						decoded.WriteString(string([]rune(string(p))))
					}
				}
				for _, chunk := range []string{s[:i], s[i:j], s[j:]} {
					head, body := c.split([]byte(chunk), &scratch)
					emit(head, body)
					if c.n > len(c.buf) {
						t.Fatalf("carry holds %d bytes", c.n)
					}
				}
				emit(c.take())
				if !bytes.Equal(got, []byte(s)) {
					t.Fatalf("cut at %d, %d: bytes %q, want %q", i, j, got, s)
				}
				if want := string([]rune(s)); decoded.String() != want {
					t.Fatalf("cut at %d, %d: decoded %q, want %q", i, j, decoded.String(), want)
				}
			}
		}
	}
}
