package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrTruncated reports that a file ends in an incomplete line, as one cut
// short by a crash does. It comes with everything before that line, and
// callers that want what was recorded may ignore it.
var ErrTruncated = errors.New("asciicast: last line is incomplete")

// ErrMalformed reports a file that is not asciicast v2 (or not a
// kubegate sidecar).
var ErrMalformed = errors.New("asciicast: malformed")

// Cast is a parsed asciicast v2 recording.
type Cast struct {
	Header CastHeader
	Events []CastEvent
}

// CastHeader is an asciicast v2 header line. Fields of the format that
// kubegate does not write (duration, idle_time_limit, theme) are ignored.
type CastHeader struct {
	Version int `json:"version"`
	// Width and Height are the terminal size at the start.
	Width  int `json:"width"`
	Height int `json:"height"`
	// Timestamp is the start, in Unix seconds.
	Timestamp int64             `json:"timestamp"`
	Command   string            `json:"command,omitempty"`
	Title     string            `json:"title,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
}

// CastEvent is one event line, [time, code, data].
type CastEvent struct {
	// Time is in seconds since the start.
	Time float64
	// Code is "o" (output), "i" (input), "r" (resize) or another code.
	Code string
	// Data is the event's text: output or input, or "COLSxROWS" for a
	// resize. After Cast.ApplyRaw it may hold bytes that are not UTF-8.
	Data string
}

// ParseCast reads an asciicast v2 recording. A last line without its
// newline that does not parse (a file cut by a crash) ends the events, and
// ParseCast returns them with ErrTruncated. Any other error comes with the
// events before the bad line, or with a nil Cast if the header is bad.
// Blank lines are skipped.
func ParseCast(r io.Reader) (*Cast, error) {
	lr := newLineReader(r)
	line, complete, err := lr.next()
	if err == io.EOF {
		return nil, fmt.Errorf("%w: no header", ErrMalformed)
	}
	if err != nil {
		return nil, err
	}
	c := &Cast{}
	if err := json.Unmarshal(line, &c.Header); err != nil {
		if !complete {
			return nil, fmt.Errorf("%w: header is cut short", ErrMalformed)
		}
		return nil, fmt.Errorf("%w: header: %w", ErrMalformed, err)
	}
	if c.Header.Version != 2 {
		return nil, fmt.Errorf("%w: version %d, want 2", ErrMalformed, c.Header.Version)
	}
	for {
		line, complete, err := lr.next()
		if err == io.EOF {
			return c, nil
		}
		if err != nil {
			return c, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		ev, err := parseEvent(line)
		if err != nil {
			if !complete {
				return c, ErrTruncated
			}
			return c, fmt.Errorf("%w: line %d: %w", ErrMalformed, lr.n, err)
		}
		c.Events = append(c.Events, ev)
	}
}

func parseEvent(line []byte) (CastEvent, error) {
	var ev CastEvent
	var fields []json.RawMessage
	if err := json.Unmarshal(line, &fields); err != nil {
		return ev, err
	}
	if len(fields) != 3 {
		return ev, fmt.Errorf("event has %d fields, want 3", len(fields))
	}
	if err := json.Unmarshal(fields[0], &ev.Time); err != nil {
		return ev, fmt.Errorf("event time: %w", err)
	}
	if err := json.Unmarshal(fields[1], &ev.Code); err != nil {
		return ev, fmt.Errorf("event code: %w", err)
	}
	if err := json.Unmarshal(fields[2], &ev.Data); err != nil {
		return ev, fmt.Errorf("event data: %w", err)
	}
	return ev, nil
}

// Output returns the data of the "o" events joined: what the client saw.
func (c *Cast) Output() string {
	n := 0
	for _, ev := range c.Events {
		if ev.Code == CodeOutput {
			n += len(ev.Data)
		}
	}
	var b strings.Builder
	b.Grow(n)
	for _, ev := range c.Events {
		if ev.Code == CodeOutput {
			b.WriteString(ev.Data)
		}
	}
	return b.String()
}

// lineReader reads lines of any length.
type lineReader struct {
	br *bufio.Reader
	n  int // the number of the line last returned, from 1
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 64<<10)}
}

// next returns the next line without its line ending. complete is false
// for a last line that has no newline. After the last line it returns
// io.EOF.
func (lr *lineReader) next() (line []byte, complete bool, err error) {
	line, err = lr.br.ReadBytes('\n')
	switch {
	case err == io.EOF && len(line) > 0:
		lr.n++
		return line, false, nil
	case err != nil:
		return nil, false, err
	}
	lr.n++
	line = line[:len(line)-1]
	return bytes.TrimSuffix(line, []byte{'\r'}), true, nil
}
