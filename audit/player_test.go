package audit

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// instantClock never waits: each After fires at once, moving the time on
// by d, and is logged.
type instantClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

func (c *instantClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *instantClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.waits = append(c.waits, d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

// manualClock fires timers when the test advances it, and reports each
// After on waits.
type manualClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []manualTimer
	waits  chan time.Duration
}

type manualTimer struct {
	at time.Time
	c  chan time.Time
}

func newManualClock() *manualClock {
	return &manualClock{now: t0, waits: make(chan time.Duration, 64)}
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	ch := make(chan time.Time, 1)
	c.timers = append(c.timers, manualTimer{c.now.Add(d), ch})
	c.mu.Unlock()
	c.waits <- d
	return ch
}

func (c *manualClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, tm := range c.timers {
		if tm.at.After(c.now) {
			kept = append(kept, tm)
			continue
		}
		tm.c <- c.now
	}
	c.timers = kept
}

// notifyWriter collects output and signals each write.
type notifyWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	wrote chan struct{}
}

func newNotifyWriter() *notifyWriter { return &notifyWriter{wrote: make(chan struct{}, 64)} }

func (w *notifyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	n, err := w.buf.Write(p)
	w.mu.Unlock()
	w.wrote <- struct{}{}
	return n, err
}

func (w *notifyWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// awaitOutput blocks until the output is want.
func (w *notifyWriter) awaitOutput(t *testing.T, want string) {
	t.Helper()
	for w.String() != want {
		if !strings.HasPrefix(want, w.String()) {
			t.Fatalf("output %q, want %q", w.String(), want)
		}
		<-w.wrote
	}
}

func newPlayer(t *testing.T, cfg PlayerConfig) *Player {
	t.Helper()
	p, err := NewPlayer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPlayerExactBytes plays a recording made by the real writer, with
// invalid UTF-8 and stderr, and checks the bytes and the waits.
func TestPlayerExactBytes(t *testing.T) {
	steps := []step{
		{100 * time.Millisecond, "o", "\x1b[1mbold\x1b[0m\r\n"},
		{300 * time.Millisecond, "i", "x"},
		{900 * time.Millisecond, "o", "bin: \xff\xfe\x00 é"},
		{1 * time.Second, "r", "120x40"},
		{31 * time.Second, "e", "oops\n"},
		{32 * time.Second, "o", "\xe2\x82"}, // a rune cut in two ...
		{33 * time.Second, "o", "\xac end"}, // ... and its end
	}
	var want string
	for _, s := range steps {
		if s.code == "o" || s.code == "e" {
			want += s.data
		}
	}
	sum := writeRecording(t, t.TempDir(), "bytes", t0, meta("bytes", "alice", "dev", "p"), steps)
	if sum.RawPath == "" {
		t.Fatal("expected a raw sidecar")
	}

	for _, tc := range []struct {
		name  string
		cfg   PlayerConfig
		waits []time.Duration
	}{
		// The cut rune makes no event of its own: it is recorded at 33s.
		{"real time", PlayerConfig{}, []time.Duration{100, 800, 30100, 2000}},
		{"double speed", PlayerConfig{Speed: 2}, []time.Duration{50, 400, 15050, 1000}},
		{"idle limit", PlayerConfig{IdleLimit: 2 * time.Second}, []time.Duration{100, 800, 2000, 2000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &instantClock{now: t0}
			tc.cfg.Clock = clk
			var out bytes.Buffer
			if err := newPlayer(t, tc.cfg).PlayFile(context.Background(), &out, sum.Path); err != nil {
				t.Fatal(err)
			}
			if out.String() != want {
				t.Errorf("output %q\nwant   %q", out.String(), want)
			}
			for i := range tc.waits {
				tc.waits[i] *= time.Millisecond
			}
			if !reflect.DeepEqual(clk.waits, tc.waits) {
				t.Errorf("waits %v, want %v", clk.waits, tc.waits)
			}
		})
	}

	// A parsed Cast plays its Output, byte for byte.
	c := readCastFile(t, sum.Path)
	var out bytes.Buffer
	if err := newPlayer(t, PlayerConfig{Clock: &instantClock{}}).Play(context.Background(), &out, c.Reader()); err != nil {
		t.Fatal(err)
	}
	if out.String() != c.Output() {
		t.Errorf("Play(Cast) = %q, want Output %q", out.String(), c.Output())
	}
}

func readCastFile(t *testing.T, path string) *Cast {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := ParseCast(f)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPlayerDamagedRecording plays what is intact of a file cut short and
// of one with a bad line in the middle, then says where it stopped.
func TestPlayerDamagedRecording(t *testing.T) {
	steps := []step{
		{1 * time.Second, "o", "one\r\n"},
		{2 * time.Second, "o", "two\r\n"},
		{12300 * time.Millisecond, "o", "three\r\n"},
		{13 * time.Second, "o", "four\r\n"},
	}
	for _, tc := range []struct {
		name    string
		damage  func(lines []string) []string
		output  string
		message string
		is      error
		line    int
	}{
		{
			name:    "cut in the last line",
			damage:  func(l []string) []string { l[4] = l[4][:5]; return l[:5] },
			output:  "one\r\ntwo\r\nthree\r\n",
			message: "replay stopped at line 5 (12.3s): recording is truncated",
			is:      ErrTruncated, line: 5,
		},
		{
			name:    "bad line in the middle",
			damage:  func(l []string) []string { l[3] = `[2.5, "o"]`; return l },
			output:  "one\r\ntwo\r\n",
			message: "replay stopped at line 4 (2.0s): asciicast: malformed: event has 2 fields, want 3",
			is:      ErrMalformed, line: 4,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sum := writeRecording(t, t.TempDir(), "cut", t0, meta("cut", "alice", "dev", "p"), steps)
			b, err := os.ReadFile(sum.Path)
			if err != nil {
				t.Fatal(err)
			}
			lines := tc.damage(strings.Split(strings.TrimSuffix(string(b), "\n"), "\n"))
			data := strings.Join(lines, "\n")
			if tc.is != ErrTruncated {
				data += "\n"
			}
			if err := os.WriteFile(sum.Path, []byte(data), 0o640); err != nil {
				t.Fatal(err)
			}

			var out bytes.Buffer
			err = newPlayer(t, PlayerConfig{Clock: &instantClock{}}).PlayFile(context.Background(), &out, sum.Path)
			var damage *CastDamage
			if err == nil || err.Error() != tc.message || !errors.Is(err, tc.is) || !errors.As(err, &damage) || damage.Line != tc.line {
				t.Fatalf("error %v, want %q", err, tc.message)
			}
			if out.String() != tc.output {
				t.Errorf("output %q, want %q", out.String(), tc.output)
			}
		})
	}
}

// TestParseCastPrefixAgreesWithParseCast runs ParseCast's cases through
// the tolerant reader: the same events, the same kind of error.
func TestParseCastPrefixAgreesWithParseCast(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseCastPrefix(strings.NewReader(tc.in))
			if !errors.Is(err, tc.err) || (err != nil) != (tc.err != nil) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if tc.noCast != (c == nil) {
				t.Fatalf("cast %+v, want none: %v", c, tc.noCast)
			}
			if c != nil && !reflect.DeepEqual(c.Events, tc.events) {
				t.Errorf("events %+v\nwant %+v", c.Events, tc.events)
			}
			var damage *CastDamage
			if err != nil && !tc.noCast && !errors.As(err, &damage) {
				t.Errorf("error %v is not a *CastDamage", err)
			}
		})
	}
}

// TestPlayerKeys drives pause, step, speed and quit with a clock the test
// advances, so every wait is seen and none is real.
func TestPlayerKeys(t *testing.T) {
	c := &Cast{Header: CastHeader{Version: 2}, Events: []CastEvent{
		{1, "o", "a"}, {2, "o", "b"}, {2.5, "i", "x"}, {3, "o", "c"}, {3.1, "r", "100x30"}, {10, "o", "d"}, {11, "o", "e"},
	}}
	clk := newManualClock()
	keysR, keysW := io.Pipe()
	defer keysR.Close()
	p := newPlayer(t, PlayerConfig{Clock: clk, Keys: keysR, IdleLimit: 5 * time.Second})
	out := newNotifyWriter()
	done := make(chan error, 1)
	go func() { done <- p.Play(context.Background(), out, c.Reader()) }()

	key := func(k string) {
		t.Helper()
		if _, err := keysW.Write([]byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	expectWait := func(want time.Duration) {
		t.Helper()
		if d := <-clk.waits; d != want {
			t.Fatalf("wait %v, want %v", d, want)
		}
	}

	expectWait(time.Second)
	clk.advance(time.Second)
	out.awaitOutput(t, "a")

	expectWait(time.Second) // to "b"
	clk.advance(400 * time.Millisecond)
	key(" ") // pause with 600ms to go
	key(".") // step: "b" now
	out.awaitOutput(t, "ab")
	key("+") // paused before "c": its 1s becomes 500ms
	key(" ") // resume
	expectWait(500 * time.Millisecond)
	clk.advance(200 * time.Millisecond)
	key(" ") // pause with 300ms to go
	key(" ") // resume
	expectWait(300 * time.Millisecond)
	clk.advance(300 * time.Millisecond)
	out.awaitOutput(t, "abc")

	expectWait(2500 * time.Millisecond) // 7s capped to 5s, at double speed
	key("-")
	expectWait(5 * time.Second) // the same wait at normal speed
	key("q")
	if err := <-done; err != nil {
		t.Fatalf("Play after quit: %v", err)
	}
	if out.String() != "abc" {
		t.Errorf("output %q after quit", out.String())
	}
	keysW.Close()
}

// TestPlayerKeysEnd resumes a paused playback when the keys run out, and
// stops it when ctx ends.
func TestPlayerKeysEnd(t *testing.T) {
	c := &Cast{Header: CastHeader{Version: 2}, Events: []CastEvent{{1, "o", "a"}, {2, "o", "b"}}}
	clk := newManualClock()
	p := newPlayer(t, PlayerConfig{Clock: clk, Keys: strings.NewReader(" ")})
	out := newNotifyWriter()
	done := make(chan error, 1)
	go func() { done <- p.Play(context.Background(), out, c.Reader()) }()
	// The pause comes and goes with the end of the keys; the test lets
	// each wait asked for pass, however many there are.
	for played := false; !played; {
		select {
		case d := <-clk.waits:
			clk.advance(d)
		case err := <-done:
			if err != nil || out.String() != "ab" {
				t.Fatalf("Play = %v, output %q", err, out.String())
			}
			played = true
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	clk = newManualClock()
	p = newPlayer(t, PlayerConfig{Clock: clk})
	go func() { done <- p.Play(ctx, io.Discard, c.Reader()) }()
	<-clk.waits
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Play after cancel: %v", err)
	}
}

func TestNewPlayerRejects(t *testing.T) {
	for _, cfg := range []PlayerConfig{{Speed: -1}, {IdleLimit: -time.Second}} {
		if _, err := NewPlayer(cfg); err == nil {
			t.Errorf("NewPlayer(%+v) accepted", cfg)
		}
	}
}

// FuzzParseCastPrefix checks the tolerant reader against ParseCast (the
// dumb one): the same events, the same kind of error, and a damage report
// on the line after the last event.
func FuzzParseCastPrefix(f *testing.F) {
	for _, tc := range parseCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		want, wantErr := ParseCast(strings.NewReader(in))
		got, err := ParseCastPrefix(strings.NewReader(in))
		if (want == nil) != (got == nil) {
			t.Fatalf("ParseCastPrefix = %v, %v; ParseCast = %v, %v", got, err, want, wantErr)
		}
		for _, sentinel := range []error{nil, ErrTruncated, ErrMalformed} {
			if sentinel == nil {
				if (err == nil) != (wantErr == nil) {
					t.Fatalf("error %v, ParseCast's %v", err, wantErr)
				}
				continue
			}
			if errors.Is(err, sentinel) != errors.Is(wantErr, sentinel) {
				t.Fatalf("error %v, ParseCast's %v", err, wantErr)
			}
		}
		if got == nil {
			return
		}
		if !reflect.DeepEqual(got.Events, want.Events) {
			t.Fatalf("events %+v, ParseCast's %+v", got.Events, want.Events)
		}
		var damage *CastDamage
		if errors.As(err, &damage) {
			if damage.Line < 2 || damage.Line > strings.Count(in, "\n")+1 {
				t.Fatalf("damage at line %d of %q", damage.Line, in)
			}
			if n := len(got.Events); n > 0 && damage.Time != got.Events[n-1].Time {
				t.Fatalf("damage at %vs, last event at %vs", damage.Time, got.Events[n-1].Time)
			}
		}
	})
}
