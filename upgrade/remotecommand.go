package upgrade

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	clientremotecommand "k8s.io/client-go/tools/remotecommand"
	serverremotecommand "k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/streaming/pkg/httpstream/wsstream"
	utilexec "k8s.io/utils/exec"
)

// Stream timeouts toward the client, as the kubelet's.
const (
	streamIdleTimeout     = 4 * time.Hour
	streamCreationTimeout = serverremotecommand.DefaultStreamCreationTimeout
)

// RemoteCommandConfig configures one exec or attach relay.
type RemoteCommandConfig struct {
	// Upstream is a rest.Config for the apiserver that already impersonates
	// the caller. Required.
	Upstream *rest.Config
	// URL is the upstream exec or attach URL, query included. Required.
	URL *url.URL
	// TLS is the apiserver TLS configuration, shared by sessions (see
	// UpstreamTLS): its session cache lets a session resume a TLS session
	// instead of a full handshake. Nil builds one from Upstream for this
	// session.
	TLS *tls.Config
	// Attach selects attach instead of exec.
	Attach bool
	// Command is the exec command (ignored for attach).
	Command []string
	// Stdin, Stdout, Stderr and TTY are the streams the client asked for.
	Stdin, Stdout, Stderr, TTY bool
	// Tap receives the decoded session. Nil records nothing.
	Tap Tap
	// NewOutputFilter, when set, makes a filter for each of stdout and
	// stderr: every chunk passes through it before the Tap and the client
	// see it (secret masking), and what it holds back is flushed when the
	// session ends. Nil passes output as it is.
	NewOutputFilter func() OutputFilter
	// OutputFlushDelay, when set, passes on what a filter holds back after
	// this long without new output, so that an interactive terminal shows a
	// typed character that could begin a secret. A secret written in two
	// parts further apart than this is then not masked whole. Zero holds
	// back until more output comes or the stream ends.
	OutputFlushDelay time.Duration
	// MaxFrameBytes bounds a client's SPDY data frames and WebSocket frames;
	// a larger one ends the session. Zero means 256 KiB (kubectl sends at
	// most 32 KiB).
	MaxFrameBytes int
	// ContinueWithoutRecording keeps a session going when Tap fails. False
	// (the default) ends the session: kubegate fails closed.
	ContinueWithoutRecording bool
	// Log receives relay errors. Nil means slog.Default().
	Log *slog.Logger
}

// RemoteCommandResult is how a relayed session ended.
type RemoteCommandResult struct {
	// Protocol is the client-side protocol, e.g. "SPDY/3.1 v4.channel.k8s.io"
	// or "websocket v5.channel.k8s.io".
	Protocol string
	// UpstreamProtocol is the protocol spoken to the apiserver, e.g.
	// "websocket v5.channel.k8s.io"; empty if no upstream session started.
	UpstreamProtocol string
	// ExitCode is the process's exit code, or -1 when it is unknown (the
	// session failed before or without an exit status).
	ExitCode int
	// Err is why the session failed, nil for a clean exit (any exit code).
	Err error
	// RecordingErr is the first recording failure, if any.
	RecordingErr error
}

// Errors a session can end with.
var (
	// ErrRecordingFailed ends a session whose recording could not be written.
	ErrRecordingFailed = errors.New("session recording failed")
	// ErrNoSession is a request whose streams were never established
	// (refused handshake, stream-creation timeout).
	ErrNoSession = errors.New("exec or attach streams were not established")
)

// ServeRemoteCommand terminates a client's exec or attach request, over
// SPDY/3.1 or any WebSocket channel protocol, and re-originates it toward
// the apiserver over SPDY (falling back to WebSocket; see
// newUpstreamExecutor). Both sides are
// decoded: the Tap sees stdin, stdout, stderr and resizes as they cross.
func ServeRemoteCommand(w http.ResponseWriter, req *http.Request, cfg RemoteCommandConfig) RemoteCommandResult {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	r := &relay{cfg: cfg, result: RemoteCommandResult{ExitCode: -1}}
	w = lingeringWriter{w}
	opts := &serverremotecommand.Options{Stdin: cfg.Stdin, Stdout: cfg.Stdout, Stderr: cfg.Stderr && !cfg.TTY, TTY: cfg.TTY}
	if wsstream.IsWebSocketRequest(req) {
		serveWebSocket(w, req, opts, r)
	} else {
		serveSPDY(w, req, opts, r)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.ran && r.result.Err == nil {
		r.result.Err = ErrNoSession
	}
	return r.result
}

// relay runs a session, whose client side is terminated by serveSPDY or
// serveWebSocket, against the apiserver.
type relay struct {
	cfg RemoteCommandConfig

	mu     sync.Mutex
	ran    bool // the streams were established and the session started
	result RemoteCommandResult
}

func (r *relay) setProtocol(p string) {
	r.mu.Lock()
	r.result.Protocol = p
	r.mu.Unlock()
}

// run streams the session upstream. Its error is what the client-side
// server reports on the error channel: an exit error becomes the
// NonZeroExitCode status, anything else an internal error.
func (r *relay) run(ctx context.Context, in io.Reader, out, errOut io.Writer, tty bool, resize <-chan serverremotecommand.TerminalSize) error {
	r.mu.Lock()
	r.ran = true
	r.mu.Unlock()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	exec, upstream, err := newUpstreamExecutor(r.cfg.Upstream, r.cfg.URL, r.cfg.TLS)
	if err != nil {
		return r.finish(fmt.Errorf("preparing upstream stream: %w", err))
	}
	taps := &tapSet{tap: r.cfg.Tap, failOpen: r.cfg.ContinueWithoutRecording, cancel: cancel}
	opts := clientremotecommand.StreamOptions{Tty: tty}
	if in != nil {
		opts.Stdin = &tappedReader{r: in, record: taps.input}
	}
	var writers []*tappedWriter
	if out != nil {
		tw := &tappedWriter{w: out, record: taps.output, cancel: cancel, filter: r.newFilter(), delay: r.cfg.OutputFlushDelay}
		opts.Stdout, writers = tw, append(writers, tw)
	}
	if errOut != nil {
		tw := &tappedWriter{w: errOut, record: taps.errorOutput, cancel: cancel, filter: r.newFilter(), delay: r.cfg.OutputFlushDelay}
		opts.Stderr, writers = tw, append(writers, tw)
	}
	if resize != nil {
		sizes := make(chan serverremotecommand.TerminalSize)
		go recordResizes(ctx, resize, sizes, taps.resize)
		opts.TerminalSizeQueue = &sizeQueue{ctx: ctx, ch: sizes}
	}
	err = upstream.check(exec.StreamWithContext(ctx, opts))
	for _, tw := range writers {
		tw.flush()
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	r.mu.Lock()
	r.result.RecordingErr = taps.err()
	r.result.UpstreamProtocol = upstream.protocol()
	r.mu.Unlock()
	return r.finish(err)
}

// newFilter is a fresh output filter, or nil.
func (r *relay) newFilter() OutputFilter {
	if r.cfg.NewOutputFilter == nil {
		return nil
	}
	return r.cfg.NewOutputFilter()
}

// finish records the outcome and returns what the client should see.
func (r *relay) finish(err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var exitErr utilexec.ExitError
	switch {
	case err == nil:
		r.result.ExitCode = 0
	case errors.As(err, &exitErr) && exitErr.Exited():
		r.result.ExitCode = exitErr.ExitStatus()
	default:
		r.result.Err = err
		r.cfg.Log.Warn("stream relay failed", "err", err)
	}
	return err
}
