package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// StderrChunk is one line of a stderr sidecar: a chunk of stderr exactly
// as the gateway passed it on.
type StderrChunk struct {
	// Time is in seconds since the start of the recording; the same
	// chunk's "o" event in the .cast has the same time.
	Time float64
	Data []byte
}

// RawChunk is one line of a raw sidecar: the exact bytes of a .cast event
// whose data was not valid UTF-8.
type RawChunk struct {
	// Event is the index of the event in Cast.Events.
	Event int
	Time  float64
	Code  string
	Data  []byte
}

// ParseStderr reads a stderr sidecar, lines [t, "<base64>"]. Like
// ParseCast it returns ErrTruncated, with the chunks before it, for an
// incomplete last line.
func ParseStderr(r io.Reader) ([]StderrChunk, error) {
	var chunks []StderrChunk
	err := parseSidecar(r, func(fields []json.RawMessage) error {
		var ch StderrChunk
		if err := unmarshalFields(fields, &ch.Time, &ch.Data); err != nil {
			return err
		}
		chunks = append(chunks, ch)
		return nil
	})
	return chunks, err
}

// ParseRaw reads a raw sidecar, lines [index, t, "code", "<base64>"]. Like
// ParseCast it returns ErrTruncated, with the chunks before it, for an
// incomplete last line.
func ParseRaw(r io.Reader) ([]RawChunk, error) {
	var chunks []RawChunk
	err := parseSidecar(r, func(fields []json.RawMessage) error {
		var ch RawChunk
		if err := unmarshalFields(fields, &ch.Event, &ch.Time, &ch.Code, &ch.Data); err != nil {
			return err
		}
		chunks = append(chunks, ch)
		return nil
	})
	return chunks, err
}

// ApplyRaw puts the exact bytes of a raw sidecar back into the events they
// belong to, so that Output returns the bytes the client received. It
// checks that each chunk names an event with its code.
func (c *Cast) ApplyRaw(chunks []RawChunk) error {
	for _, ch := range chunks {
		if ch.Event < 0 || ch.Event >= len(c.Events) || c.Events[ch.Event].Code != ch.Code {
			return fmt.Errorf("%w: raw chunk for event %d (%q) matches no event", ErrMalformed, ch.Event, ch.Code)
		}
	}
	for _, ch := range chunks {
		c.Events[ch.Event].Data = string(ch.Data)
	}
	return nil
}

// parseSidecar calls fn with the fields of each JSON array line of r.
func parseSidecar(r io.Reader, fn func(fields []json.RawMessage) error) error {
	lr := newLineReader(r)
	for {
		line, complete, err := lr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var fields []json.RawMessage
		err = json.Unmarshal(line, &fields)
		if err == nil {
			err = fn(fields)
		}
		if err != nil {
			if !complete {
				return ErrTruncated
			}
			return fmt.Errorf("%w: line %d: %w", ErrMalformed, lr.n, err)
		}
	}
}

// unmarshalFields decodes fields into dst, one each, requiring as many
// fields as there are dsts. A *[]byte takes a base64 string, as
// encoding/json does.
func unmarshalFields(fields []json.RawMessage, dst ...any) error {
	if len(fields) != len(dst) {
		return fmt.Errorf("line has %d fields, want %d", len(fields), len(dst))
	}
	for i, f := range fields {
		if err := json.Unmarshal(f, dst[i]); err != nil {
			return fmt.Errorf("field %d: %w", i, err)
		}
	}
	return nil
}
