package upgrade

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	serverremotecommand "k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// rcStatusCases are writeExitStatus's table, and FuzzExitStatus's
// seeds: kind 0 is no error, 1 a plain error, 2 an exit error, 3 an exit
// error wrapped, 4 an exit error that did not exit.
var rcStatusCases = []struct {
	name     string
	protocol string
	kind     uint8
	msg      string
	code     int
	want     string // the exact output
}{
	{"V5Success", wsProtocolV5, 0, "", 0, `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success"}`},
	{"V4Exit3", wsProtocolV4, 2, "command terminated with exit code 3", 3,
		`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: command terminated with exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}`},
	{"V4Base64WrappedExit", wsProtocolV4Base64, 3, "upstream", 7,
		`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: upstream: exit 7","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"7"}]}}`},
	{"V5InternalError", wsProtocolV5, 1, "boom", 0,
		`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"error executing command in container: boom","reason":"InternalError","code":500}`},
	{"V5NotExited", wsProtocolV5, 4, "killed", 9,
		`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"error executing command in container: killed","reason":"InternalError","code":500}`},
	{"V4QuotesAndBadUTF8", wsProtocolV4, 1, "\"\n\xff<>&", 0,
		`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"error executing command in container: \"\n\ufffd\u003c\u003e\u0026","reason":"InternalError","code":500}`},
	{"V1Success", wsProtocolV1, 0, "", 0, ``},
	{"V1Exit", wsProtocolV1, 2, "command terminated with exit code 3", 3, `command terminated with exit code 3`},
	{"Base64Error", wsProtocolV1Base64, 1, "boom", 0, `boom`},
	{"NoProtocolError", "", 1, "boom", 0, `boom`},
	{"UnknownProtocolError", "v9.channel.k8s.io", 1, "boom", 0, `boom`},
}

// rcStatusError builds a case's error.
func rcStatusError(kind uint8, msg string, code int) error {
	switch kind % 5 {
	case 1:
		return errors.New(msg)
	case 2:
		return utilexec.CodeExitError{Err: errors.New(msg), Code: code}
	case 3:
		return fmt.Errorf("%s: %w", msg, utilexec.CodeExitError{Err: fmt.Errorf("exit %d", code), Code: code})
	case 4:
		return rcNotExited{msg}
	}
	return nil
}

// rcNotExited is an ExitError for a process that did not exit (killed).
type rcNotExited struct{ msg string }

func (e rcNotExited) Error() string   { return e.msg }
func (e rcNotExited) String() string  { return e.msg }
func (e rcNotExited) Exited() bool    { return false }
func (e rcNotExited) ExitStatus() int { return -1 }

var _ utilexec.ExitError = rcNotExited{}

// rcWrites records each Write as one message, as a WebSocket channel does.
type rcWrites struct{ msgs [][]byte }

func (w *rcWrites) Write(p []byte) (int, error) {
	w.msgs = append(w.msgs, bytes.Clone(p))
	return len(p), nil
}

// TestWSExecWriteStatus checks the error channel's content, byte for byte.
func TestWSExecWriteStatus(t *testing.T) {
	for _, tc := range rcStatusCases {
		t.Run(tc.name, func(t *testing.T) {
			var w rcWrites
			if err := writeExitStatus(&w, tc.protocol, rcStatusError(tc.kind, tc.msg, tc.code)); err != nil {
				t.Fatal(err)
			}
			if got := string(bytes.Join(w.msgs, nil)); got != tc.want {
				t.Errorf("wrote\n%s\nwant\n%s", got, tc.want)
			}
			if len(w.msgs) > 1 {
				t.Errorf("%d messages, want at most one", len(w.msgs))
			}
		})
	}
	t.Run("WriteError", func(t *testing.T) {
		werr := errors.New("gone")
		for _, p := range []string{wsProtocolV5, wsProtocolV1} {
			if err := writeExitStatus(rcFailingWriter{werr}, p, errors.New("x")); !errors.Is(err, werr) {
				t.Errorf("%s: error %v, want %v", p, err, werr)
			}
		}
	})
}

type rcFailingWriter struct{ err error }

func (w rcFailingWriter) Write([]byte) (int, error) { return 0, w.err }

// rcResizeCases are readResizes's table, and FuzzReadResizes's seeds.
var rcResizeCases = []struct {
	name string
	in   string
	want []serverremotecommand.TerminalSize
}{
	{"Empty", "", nil},
	{"One", `{"Width":80,"Height":24}`, []serverremotecommand.TerminalSize{{Width: 80, Height: 24}}},
	{"KubectlStream", "{\"Width\":80,\"Height\":24}\n{\"Width\":120,\"Height\":40}\n",
		[]serverremotecommand.TerminalSize{{Width: 80, Height: 24}, {Width: 120, Height: 40}}},
	{"NoSeparator", `{"Width":1,"Height":2}{"Width":3,"Height":4}`, []serverremotecommand.TerminalSize{{Width: 1, Height: 2}, {Width: 3, Height: 4}}},
	{"Null", `null`, []serverremotecommand.TerminalSize{{}}},
	{"LowerCaseAndExtra", `{"width":5,"height":6,"extra":{"a":[1]}}`, []serverremotecommand.TerminalSize{{Width: 5, Height: 6}}},
	{"Truncated", `{"Width":80,"Hei`, nil},
	{"NotJSON", "not json", nil},
	{"ThenGarbage", `{"Width":80,"Height":24}]{"Width":1,"Height":1}`, []serverremotecommand.TerminalSize{{Width: 80, Height: 24}}},
	{"Overflow", `{"Width":65536,"Height":1}`, nil},
	{"Negative", `{"Width":-1,"Height":1}`, nil},
	{"Float", `{"Width":1.5,"Height":1}`, nil},
	{"WrongType", `{"Width":"80","Height":24}`, nil},
	{"Array", `[80,24]`, nil},
	{"Number", `80`, nil},
	{"Max", `{"Width":65535,"Height":65535}`, []serverremotecommand.TerminalSize{{Width: 65535, Height: 65535}}},
}

// rcRunResizes runs readResizes over r and returns what it sent; it fails
// if readResizes does not close the channel and return within d.
func rcRunResizes(t testing.TB, ctx context.Context, r io.Reader, d time.Duration) []serverremotecommand.TerminalSize {
	t.Helper()
	ch := make(chan serverremotecommand.TerminalSize)
	done := make(chan struct{})
	go func() {
		defer close(done)
		readResizes(ctx, r, ch)
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	var got []serverremotecommand.TerminalSize
	for {
		select {
		case s, ok := <-ch:
			if !ok {
				select {
				case <-done:
				case <-timer.C:
					t.Fatal("readResizes closed its channel but did not return")
				}
				return got
			}
			got = append(got, s)
		case <-timer.C:
			t.Fatalf("readResizes did not close its channel within %s", d)
		}
	}
}

// TestWSExecReadResizes decodes the table's resize streams, whole and one
// byte at a time, and checks readResizes never blocks the WebSocket's
// reader: after a bad resize it keeps reading, and it stops when the
// session ends.
func TestWSExecReadResizes(t *testing.T) {
	for _, tc := range rcResizeCases {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
				if got := rcRunResizes(t, t.Context(), r, rcTimeout); !slices.Equal(got, tc.want) {
					t.Errorf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
	t.Run("KeepsReadingAfterABadResize", func(t *testing.T) {
		pr, pw := io.Pipe()
		ch := make(chan serverremotecommand.TerminalSize)
		go readResizes(t.Context(), pr, ch)
		if _, err := io.WriteString(pw, "junk"); err != nil {
			t.Fatal(err)
		}
		if _, ok := <-ch; ok {
			t.Fatal("a size from junk")
		}
		// Each write returns only once read: these would block for good
		// if readResizes had stopped reading.
		wrote := make(chan error, 1)
		go func() {
			for range 3 {
				if _, err := io.WriteString(pw, `{"Width":80,"Height":24}`); err != nil {
					wrote <- err
					return
				}
			}
			wrote <- nil
		}()
		select {
		case err := <-wrote:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(rcTimeout):
			t.Error("readResizes stopped reading after a bad resize: the WebSocket's reader would block")
			_ = pr.Close()
		}
		_ = pw.Close()
	})
	t.Run("StopsWhenTheSessionEnds", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		ch := make(chan serverremotecommand.TerminalSize) // never read
		done := make(chan struct{})
		go func() {
			defer close(done)
			readResizes(ctx, strings.NewReader(`{"Width":80,"Height":24}`), ch)
		}()
		cancel()
		select {
		case <-done:
		case <-time.After(rcTimeout):
			t.Fatal("readResizes did not return when its context ended")
		}
		if _, ok := <-ch; ok {
			t.Error("the channel was not closed")
		}
	})
}

// FuzzExitStatus: for any error and protocol, writeExitStatus
// writes at most one message; for v4 and v5 it is a JSON Status a client
// can decode (Success exactly when there is no error, NonZeroExitCode with
// the exit code for an exit, InternalError otherwise); before v4 it is the
// error's text, and nothing on success.
func FuzzExitStatus(f *testing.F) {
	for _, tc := range rcStatusCases {
		f.Add(tc.protocol, tc.kind, tc.msg, tc.code)
	}
	f.Fuzz(func(t *testing.T, protocol string, kind uint8, msg string, code int) {
		err := rcStatusError(kind, msg, code)
		var w rcWrites
		if werr := writeExitStatus(&w, protocol, err); werr != nil {
			t.Fatal(werr)
		}
		if len(w.msgs) > 1 {
			t.Fatalf("%d messages", len(w.msgs))
		}
		out := bytes.Join(w.msgs, nil)
		if protocol != wsProtocolV4 && protocol != wsProtocolV4Base64 && protocol != wsProtocolV5 {
			want := ""
			if err != nil {
				want = err.Error()
			}
			if string(out) != want {
				t.Fatalf("wrote %q, want %q", out, want)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("not JSON: %q", out)
		}
		var st metav1.Status
		if jerr := json.Unmarshal(out, &st); jerr != nil {
			t.Fatal(jerr)
		}
		if st.Kind != "Status" || st.APIVersion != "v1" {
			t.Fatalf("kind %q, apiVersion %q", st.Kind, st.APIVersion)
		}
		var exitErr utilexec.ExitError
		switch {
		case err == nil:
			if st.Status != metav1.StatusSuccess || st.Reason != "" || st.Details != nil {
				t.Fatalf("success written as %s", out)
			}
		case rcAsExited(err, &exitErr):
			if st.Status != metav1.StatusFailure || st.Reason != serverremotecommand.NonZeroExitCodeReason ||
				st.Details == nil || len(st.Details.Causes) != 1 ||
				st.Details.Causes[0].Type != serverremotecommand.ExitCodeCauseType ||
				st.Details.Causes[0].Message != strconv.Itoa(exitErr.ExitStatus()) {
				t.Fatalf("exit %d written as %s", exitErr.ExitStatus(), out)
			}
		default:
			want := "error executing command in container: " + string([]rune(err.Error()))
			if st.Status != metav1.StatusFailure || st.Reason != metav1.StatusReasonInternalError ||
				st.Code != 500 || st.Message != want {
				t.Fatalf("error %q written as %s", err, out)
			}
		}
	})
}

func rcAsExited(err error, target *utilexec.ExitError) bool {
	var e utilexec.ExitError
	if !errors.As(err, &e) || !e.Exited() {
		return false
	}
	*target = e
	return true
}

// FuzzReadResizes: any bytes on the resize channel, whole or in chunks of
// any size, never panic readResizes, which closes its channel and returns
// at the stream's end, having sent exactly the sizes a plain json.Decoder
// reads before its first error.
func FuzzReadResizes(f *testing.F) {
	for _, tc := range rcResizeCases {
		f.Add([]byte(tc.in), uint8(0))
		f.Add([]byte(tc.in), uint8(1))
	}
	files, _ := filepath.Glob("testdata/remotecommand/resize-*")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		var want []serverremotecommand.TerminalSize
		dec := json.NewDecoder(bytes.NewReader(data))
		for {
			var s serverremotecommand.TerminalSize
			if dec.Decode(&s) != nil {
				break
			}
			want = append(want, s)
		}
		var r io.Reader = bytes.NewReader(data)
		if chunk > 0 {
			r = &rcChunkReader{r: r, n: int(chunk)}
		}
		if chunk%2 == 1 {
			r = iotest.DataErrReader(r) // EOF with the last data
		}
		got := rcRunResizes(t, context.Background(), r, 10*time.Second)
		if !slices.Equal(got, want) {
			t.Fatalf("sent %v, want %v", got, want)
		}
	})
}

// rcChunkReader returns at most n bytes per Read.
type rcChunkReader struct {
	r io.Reader
	n int
}

func (c *rcChunkReader) Read(p []byte) (int, error) {
	return c.r.Read(p[:min(len(p), c.n)])
}

// TestFuzzSeedsFromTestdata keeps the fuzz seeds' testdata files honest:
// each is non-empty, and the kubectl one is what kubectl sends.
func TestFuzzSeedsFromTestdata(t *testing.T) {
	b, err := os.ReadFile("testdata/remotecommand/resize-kubectl.txt")
	if err != nil {
		t.Fatal(err)
	}
	got := rcRunResizes(t, t.Context(), bytes.NewReader(b), rcTimeout)
	if len(got) != strings.Count(string(b), "\n") {
		t.Errorf("%d sizes from %d lines", len(got), strings.Count(string(b), "\n"))
	}
}
