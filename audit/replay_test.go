package audit

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const header = `{"version":2,"width":80,"height":24,"timestamp":1772668798,"env":{"user":"alice","SHELL":null}}` + "\n"

// parseCases are shared with FuzzParseCast as its seeds.
var parseCases = []struct {
	name   string
	in     string
	events []CastEvent
	err    error // matched with errors.Is; nil for success
	noCast bool  // the header is bad: no Cast at all
}{
	{"header only", header, nil, nil, false},
	{"events", header + `[0.5, "o", "hi\r\n"]` + "\n" + `[1, "i", "x"]` + "\n" + `[1.25, "r", "100x30"]` + "\n",
		[]CastEvent{{0.5, "o", "hi\r\n"}, {1, "i", "x"}, {1.25, "r", "100x30"}}, nil, false},
	{"crlf and blank lines", header + "\r\n" + `[0.1,"o","a"]` + "\r\n\n", []CastEvent{{0.1, "o", "a"}}, nil, false},
	{"last line without newline", header + `[0.1,"o","a"]`, []CastEvent{{0.1, "o", "a"}}, nil, false},
	{"escapes", header + `[0,"o","\u001b[0m\u00e9\ud83d\ude00\"\\"]` + "\n", []CastEvent{{0, "o", "\x1b[0mé😀\"\\"}}, nil, false},
	{"lone surrogate", header + `[0,"o","\ud800"]` + "\n", []CastEvent{{0, "o", "\ufffd"}}, nil, false},
	{"marker and unknown codes", header + `[1,"m",""]` + "\n" + `[2,"x","0"]` + "\n", []CastEvent{{1, "m", ""}, {2, "x", "0"}}, nil, false},
	{"truncated", header + `[0.1,"o","a"]` + "\n" + `[0.2,"o","b`, []CastEvent{{0.1, "o", "a"}}, ErrTruncated, false},
	{"truncated in time", header + `[0.`, nil, ErrTruncated, false},
	{"truncated with zeros", header + `[0.1,"o","a"]` + "\n\x00\x00\x00", []CastEvent{{0.1, "o", "a"}}, ErrTruncated, false},
	{"bad line in the middle", header + `[0.1,"o","a"]` + "\n" + `[0.2,"o"]` + "\n" + `[0.3,"o","c"]` + "\n", []CastEvent{{0.1, "o", "a"}}, ErrMalformed, false},
	{"four fields", header + `[0.1,"o","a",1]` + "\n", nil, ErrMalformed, false},
	{"time not a number", header + `["0.1","o","a"]` + "\n", nil, ErrMalformed, false},
	{"data not a string", header + `[0.1,"o",1]` + "\n", nil, ErrMalformed, false},
	{"empty", "", nil, ErrMalformed, true},
	{"header cut", `{"version":2,"wid`, nil, ErrMalformed, true},
	{"version 1", `{"version":1,"width":80,"height":24,"stdout":[]}` + "\n", nil, ErrMalformed, true},
	{"version 3", `{"version":3,"term":{"cols":80,"rows":24}}` + "\n", nil, ErrMalformed, true},
	{"not json", "hello\n", nil, ErrMalformed, true},
}

func TestParseCast(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseCast(strings.NewReader(tc.in))
			if !errors.Is(err, tc.err) || (err != nil) != (tc.err != nil) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if tc.noCast {
				if c != nil {
					t.Fatalf("a bad header gave a Cast: %+v", c)
				}
				return
			}
			if c == nil {
				t.Fatal("no Cast")
			}
			if !reflect.DeepEqual(c.Events, tc.events) {
				t.Errorf("events %+v\nwant %+v", c.Events, tc.events)
			}
		})
	}
}

func TestParseCastHeader(t *testing.T) {
	c, err := ParseCast(strings.NewReader(`{"version":2,"width":120,"height":40,"timestamp":1,"duration":3.5,"idle_time_limit":2,"command":"sh","title":"t","env":{"a":"b","SHELL":null},"theme":{"fg":"#fff"}}` + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := CastHeader{Version: 2, Width: 120, Height: 40, Timestamp: 1, Command: "sh", Title: "t", Env: map[string]string{"a": "b", "SHELL": ""}}
	if !reflect.DeepEqual(c.Header, want) {
		t.Errorf("header %+v, want %+v", c.Header, want)
	}
}

// TestParseCastCutAnywhere cuts a recording at every byte after the
// header: the result is the whole events before the cut, and ErrTruncated
// unless the cut falls at the end of a line.
func TestParseCastCutAnywhere(t *testing.T) {
	lines := []string{`[0.000001, "o", "abc"]`, `[0.5, "i", "é😀\n"]`, `[1.000000, "r", "120x40"]`}
	full := header + strings.Join(lines, "\n") + "\n"
	for cut := len(header); cut <= len(full); cut++ {
		in := full[:cut]
		c, err := ParseCast(strings.NewReader(in))
		body := in[len(header):]
		want := strings.Count(body, "\n")
		tail := body[strings.LastIndex(body, "\n")+1:]
		switch {
		case tail == "":
			if err != nil {
				t.Fatalf("cut at %d, after a newline: %v", cut, err)
			}
		case slices.Contains(lines, tail): // a whole line, only its newline cut
			if err != nil {
				t.Fatalf("cut at %d, before a newline: %v", cut, err)
			}
			want++
		default:
			if !errors.Is(err, ErrTruncated) {
				t.Fatalf("cut at %d: %v, want ErrTruncated", cut, err)
			}
		}
		if len(c.Events) != want {
			t.Fatalf("cut at %d: %d events, want %d", cut, len(c.Events), want)
		}
	}
}

func TestParseSidecars(t *testing.T) {
	stderr := "[0.001000, \"aGk=\"]\n[0.002000, \"/w==\"]\n[0.003, \"aG"
	chunks, err := ParseStderr(strings.NewReader(stderr))
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("ParseStderr: %v, want ErrTruncated", err)
	}
	want := []StderrChunk{{0.001, []byte("hi")}, {0.002, []byte{0xff}}}
	if !reflect.DeepEqual(chunks, want) {
		t.Errorf("stderr chunks %+v, want %+v", chunks, want)
	}
	if _, err := ParseStderr(strings.NewReader("[0.1, \"not base64!\"]\n")); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad base64: %v, want ErrMalformed", err)
	}

	raw := "[1, 0.5, \"o\", \"/w==\"]\n"
	rc, err := ParseRaw(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if want := []RawChunk{{1, 0.5, "o", []byte{0xff}}}; !reflect.DeepEqual(rc, want) {
		t.Errorf("raw chunks %+v, want %+v", rc, want)
	}
	c := &Cast{Events: []CastEvent{{0.1, "o", "a"}, {0.5, "o", "\ufffd"}}}
	for _, bad := range [][]RawChunk{{{Event: 2, Code: "o"}}, {{Event: -1, Code: "o"}}, {{Event: 1, Code: "i"}}} {
		if err := c.ApplyRaw(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("ApplyRaw(%+v): %v, want ErrMalformed", bad, err)
		}
	}
	if err := c.ApplyRaw(rc); err != nil {
		t.Fatal(err)
	}
	if c.Output() != "a\xff" {
		t.Errorf("Output after ApplyRaw %q", c.Output())
	}
}
