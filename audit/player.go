package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// CastDamage reports where a damaged recording stops being readable: a
// last line cut short (Err is ErrTruncated) or a line in the middle that
// is not an event (Err wraps ErrMalformed). Everything before Line is
// intact.
type CastDamage struct {
	// Line is the number of the unreadable line, from 1 (the header).
	Line int
	// Time is the time of the last intact event, in seconds since the
	// start; 0 if there was none.
	Time float64
	// Err is ErrTruncated, or ErrMalformed wrapped with the reason.
	Err error
}

// Error reads "line 57 (12.3s): recording is truncated".
func (d *CastDamage) Error() string {
	what := "recording is truncated"
	if !errors.Is(d.Err, ErrTruncated) {
		what = d.Err.Error()
	}
	return fmt.Sprintf("line %d (%.1fs): %s", d.Line, d.Time, what)
}

// Unwrap returns Err, so errors.Is matches ErrTruncated or ErrMalformed.
func (d *CastDamage) Unwrap() error { return d.Err }

// EventReader yields a recording's events in order, then io.EOF.
type EventReader interface {
	Next() (CastEvent, error)
}

// CastReader reads an asciicast v2 recording one event at a time, so a
// recording of any length plays in bounded memory. It parses as ParseCast
// does, and reports the first unreadable line as a *CastDamage.
type CastReader struct {
	// Header is the recording's header, read by NewCastReader.
	Header CastHeader

	lr    *lineReader
	index int        // of the next event
	last  float64    // the time of the last event returned
	raw   []RawChunk // sorted by Event; consumed from the front
	err   error      // sticky: io.EOF or a *CastDamage
}

var _ EventReader = (*CastReader)(nil)

// NewCastReader reads the header. A bad header is ErrMalformed, as for
// ParseCast.
func NewCastReader(r io.Reader) (*CastReader, error) {
	lr := newLineReader(r)
	line, _, err := lr.next()
	if err != nil && err != io.EOF {
		return nil, err
	}
	// ParseCast of the header line alone checks it exactly as a whole
	// file's header is checked.
	c, err := ParseCast(bytes.NewReader(line))
	if err != nil {
		return nil, err
	}
	return &CastReader{Header: c.Header, lr: lr}, nil
}

// SetRaw gives the reader the chunks of the recording's raw sidecar: each
// event they name is returned with its exact bytes instead of the .cast's
// U+FFFD replacements. The chunks must be in event order, as ParseRaw
// returns them; one whose event and code do not match is ignored.
func (cr *CastReader) SetRaw(chunks []RawChunk) {
	cr.raw = chunks
}

// Next returns the next event. After the last it returns io.EOF; at a
// line that is not an event, a *CastDamage, and the same from then on.
func (cr *CastReader) Next() (CastEvent, error) {
	if cr.err != nil {
		return CastEvent{}, cr.err
	}
	for {
		line, complete, err := cr.lr.next()
		if err != nil {
			if err != io.EOF {
				err = fmt.Errorf("reading recording after line %d: %w", cr.lr.n, err)
			}
			cr.err = err
			return CastEvent{}, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		ev, err := parseEvent(line)
		if err != nil {
			d := &CastDamage{Line: cr.lr.n, Time: cr.last, Err: ErrTruncated}
			if complete {
				d.Err = fmt.Errorf("%w: %w", ErrMalformed, err)
			}
			cr.err = d
			return CastEvent{}, d
		}
		for len(cr.raw) > 0 && cr.raw[0].Event < cr.index {
			cr.raw = cr.raw[1:]
		}
		if len(cr.raw) > 0 && cr.raw[0].Event == cr.index && cr.raw[0].Code == ev.Code {
			ev.Data = string(cr.raw[0].Data)
			cr.raw = cr.raw[1:]
		}
		cr.index++
		cr.last = ev.Time
		return ev, nil
	}
}

// ParseCastPrefix reads a recording as ParseCast does, but a damaged line
// anywhere ends it with a *CastDamage that says where, returned with the
// events before it. A bad header returns a nil Cast and ErrMalformed.
func ParseCastPrefix(r io.Reader) (*Cast, error) {
	cr, err := NewCastReader(r)
	if err != nil {
		return nil, err
	}
	c := &Cast{Header: cr.Header}
	for {
		ev, err := cr.Next()
		if err == io.EOF {
			return c, nil
		}
		if err != nil {
			return c, err
		}
		c.Events = append(c.Events, ev)
	}
}

// sliceReader plays a parsed Cast.
type sliceReader struct{ events []CastEvent }

func (s *sliceReader) Next() (CastEvent, error) {
	if len(s.events) == 0 {
		return CastEvent{}, io.EOF
	}
	ev := s.events[0]
	s.events = s.events[1:]
	return ev, nil
}

// Reader returns an EventReader over c's events.
func (c *Cast) Reader() EventReader { return &sliceReader{events: c.Events} }

// PlayerClock is the player's time: the real one, or a fake in tests.
type PlayerClock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Player control keys.
const (
	KeyPause  = ' '  // pause or resume
	KeyStep   = '.'  // while paused: play the next event now
	KeyFaster = '+'  // double the speed
	KeySlower = '-'  // halve the speed
	KeyQuit   = 'q'  // stop playing
	keyCtrlC  = 0x03 // a raw terminal sends Ctrl-C as a byte
)

// Speed bounds for KeyFaster and KeySlower.
const (
	minSpeed = 1.0 / 64
	maxSpeed = 64
)

// PlayerConfig configures a Player.
type PlayerConfig struct {
	// Speed multiplies playback speed: 2 plays twice as fast. Zero means 1.
	Speed float64
	// IdleLimit caps every pause between two outputs, before Speed
	// applies. Zero means no cap.
	IdleLimit time.Duration
	// Keys, if set, controls playback one byte a key: KeyPause, KeyStep,
	// KeyFaster, KeySlower, KeyQuit (and Ctrl-C); other bytes are ignored.
	// Play reads it from a goroutine that stays blocked in Read until Keys
	// returns, so a caller that wants it gone closes Keys after Play.
	// Nil means no control.
	Keys io.Reader
	// Clock times playback. Nil means the real clock.
	Clock PlayerClock
}

// Player writes a recording's output to a writer with its original timing.
type Player struct {
	cfg PlayerConfig
}

// NewPlayer validates cfg.
func NewPlayer(cfg PlayerConfig) (*Player, error) {
	if cfg.Speed < 0 || cfg.IdleLimit < 0 {
		return nil, errors.New("audit player: speed and idle limit must not be negative")
	}
	if cfg.Speed == 0 {
		cfg.Speed = 1
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	return &Player{cfg: cfg}, nil
}

// Play writes the data of the "o" events from events to w, waiting before
// each for the time that separated it from the previous output (capped by
// IdleLimit, divided by the speed). Input and resize events are not shown.
// The bytes written are exactly the events' data, in order.
//
// It returns nil at the end of the recording or when the user quits, and
// ctx's error if ctx ends first. If events reports a *CastDamage, Play
// returns it as "replay stopped at line 57 (12.3s): recording is
// truncated", after everything before it has been played.
func (p *Player) Play(ctx context.Context, w io.Writer, events EventReader) error {
	s := &playback{cfg: p.cfg, speed: p.cfg.Speed, ctx: ctx, done: make(chan struct{})}
	defer close(s.done)
	if p.cfg.Keys != nil {
		s.keys = make(chan byte)
		go s.readKeys(p.cfg.Keys)
	}
	var prev float64
	for {
		ev, err := events.Next()
		if err == io.EOF {
			return nil
		}
		var damage *CastDamage
		if errors.As(err, &damage) {
			return fmt.Errorf("replay stopped at %w", err)
		}
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		if ev.Code != CodeOutput {
			continue
		}
		gap := time.Duration(max(ev.Time-prev, 0) * float64(time.Second))
		prev = ev.Time
		if p.cfg.IdleLimit > 0 {
			gap = min(gap, p.cfg.IdleLimit)
		}
		if quit, err := s.wait(gap); quit || err != nil {
			return err
		}
		if _, err := io.WriteString(w, ev.Data); err != nil {
			return fmt.Errorf("replay: writing output: %w", err)
		}
	}
}

// PlayFile plays the recording at path (a .cast file), with the exact
// bytes of its raw sidecar if it has one. See Play.
func (p *Player) PlayFile(ctx context.Context, w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	defer f.Close()
	cr, err := NewCastReader(f)
	if err != nil {
		return fmt.Errorf("replay %s: %w", path, err)
	}
	raw, err := readRawSidecar(path)
	if err != nil {
		return fmt.Errorf("replay %s: %w", path, err)
	}
	cr.SetRaw(raw)
	return p.Play(ctx, w, cr)
}

// readRawSidecar reads the raw sidecar beside a .cast, if there is one. A
// sidecar cut short gives the chunks before the cut.
func readRawSidecar(castPath string) ([]RawChunk, error) {
	f, err := os.Open(strings.TrimSuffix(castPath, ".cast") + ".raw.jsonl")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	chunks, err := ParseRaw(f)
	if err != nil && !errors.Is(err, ErrTruncated) {
		return nil, fmt.Errorf("raw sidecar: %w", err)
	}
	return chunks, nil
}

// playback is one Play call's state.
type playback struct {
	cfg    PlayerConfig
	ctx    context.Context
	keys   chan byte // nil without Keys, or once Keys has ended
	done   chan struct{}
	speed  float64
	paused bool
}

// readKeys passes the bytes of r to s.keys until r ends or Play returns.
func (s *playback) readKeys(r io.Reader) {
	defer close(s.keys)
	var b [1]byte
	for {
		n, err := r.Read(b[:])
		if n > 0 {
			select {
			case s.keys <- b[0]:
			case <-s.done:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// wait lets d pass at the current speed, serving keys meanwhile. It
// reports quit when the user quits or ctx ends (with ctx's error).
func (s *playback) wait(d time.Duration) (quit bool, err error) {
	clock := s.cfg.Clock
	remaining := s.scale(d)
	for {
		var timer <-chan time.Time
		var start time.Time
		if !s.paused {
			if remaining <= 0 {
				return false, nil
			}
			start = clock.Now()
			timer = clock.After(remaining)
		}
		select {
		case <-s.ctx.Done():
			return true, s.ctx.Err()
		case <-timer:
			return false, nil
		case k, ok := <-s.keys:
			if !s.paused {
				remaining -= clock.Now().Sub(start)
			}
			if !ok {
				s.keys, s.paused = nil, false // no one can resume
				continue
			}
			switch k {
			case KeyQuit, keyCtrlC:
				return true, nil
			case KeyPause:
				s.paused = !s.paused
			case KeyStep:
				if s.paused {
					return false, nil
				}
			case KeyFaster, KeySlower:
				old := s.speed
				if k == KeyFaster {
					s.speed = min(s.speed*2, maxSpeed)
				} else {
					s.speed = max(s.speed/2, minSpeed)
				}
				remaining = time.Duration(float64(remaining) * old / s.speed)
			}
		}
	}
}

// scale divides a recorded gap by the speed.
func (s *playback) scale(d time.Duration) time.Duration {
	return time.Duration(float64(d) / s.speed)
}
