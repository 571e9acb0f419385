package upgrade

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	clientremotecommand "k8s.io/client-go/tools/remotecommand"
)

// holdBackUpper upper-cases output and holds back each chunk's last byte
// until the next chunk or the end, as a masker holds back a possible match.
type holdBackUpper struct{ held []byte }

func (f *holdBackUpper) Write(p []byte) []byte {
	buf := append(f.held, bytes.ToUpper(p)...)
	if len(buf) == 0 {
		return nil
	}
	out := bytes.Clone(buf[:len(buf)-1])
	f.held = []byte{buf[len(buf)-1]}
	return out
}

func (f *holdBackUpper) Flush() []byte {
	out := f.held
	f.held = nil
	return out
}

// TestRemoteCommandOutputFilter: stdout and stderr pass through the filter
// before the Tap and the client see them, and what it holds back arrives
// at the end, over both client protocols.
func TestRemoteCommandOutputFilter(t *testing.T) {
	for _, websocket := range []bool{false, true} {
		t.Run(fmt.Sprintf("websocket=%t", websocket), func(t *testing.T) {
			tap := &rcTap{}
			h := newRCHarness(t, func(c *RemoteCommandConfig) {
				c.Tap = tap
				c.NewOutputFilter = func() OutputFilter { return &holdBackUpper{} }
			})
			ctx, cancel := context.WithTimeout(t.Context(), rcTimeout)
			defer cancel()
			var out, errOut rcBuffer
			opts := clientremotecommand.StreamOptions{Stdin: strings.NewReader("secret token"), Stdout: &out, Stderr: &errOut}
			err := h.exec(ctx, websocket, rcExecPath, rcAll.query("f", "echo", "0"), opts)
			if err != nil {
				t.Fatalf("exec: %v", err)
			}
			h.wait(t, "f", rcTimeout)
			if out.String() != "SECRET TOKEN" || errOut.String() != "ERR" {
				t.Errorf("client got stdout %q stderr %q, want the filtered output", out.String(), errOut.String())
			}
			tap.mu.Lock()
			defer tap.mu.Unlock()
			if got := tap.output.String(); got != "SECRET TOKEN" {
				t.Errorf("tap saw stdout %q", got)
			}
			if got := tap.errs.String(); got != "ERR" {
				t.Errorf("tap saw stderr %q", got)
			}
		})
	}
}

// TestRemoteCommandOutputIdleFlush: with OutputFlushDelay, what the filter
// holds back reaches the client while the session is idle, before any more
// output or the end.
func TestRemoteCommandOutputIdleFlush(t *testing.T) {
	h := newRCHarness(t, func(c *RemoteCommandConfig) {
		c.NewOutputFilter = func() OutputFilter { return &holdBackUpper{} }
		c.OutputFlushDelay = 10 * time.Millisecond
	})
	ctx, cancel := context.WithTimeout(t.Context(), rcTimeout)
	defer cancel()
	stdinR, stdinW := io.Pipe()
	var out rcBuffer
	done := make(chan error, 1)
	go func() {
		done <- h.exec(ctx, false, rcExecPath, rcStreams{stdin: true, stdout: true}.query("idle", "echo", "0"), clientremotecommand.StreamOptions{Stdin: stdinR, Stdout: &out})
	}()
	_, _ = io.WriteString(stdinW, "typed")
	// Stdin stays open: only the idle flush can deliver the held "D".
	rcWaitFor(t, "the held-back byte after the pause", rcTimeout, func() bool { return out.String() == "TYPED" })
	stdinW.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	h.wait(t, "idle", rcTimeout)
}
