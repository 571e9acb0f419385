package upgrade

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	clientremotecommand "k8s.io/client-go/tools/remotecommand"
	serverremotecommand "k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/streaming/pkg/httpstream"
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
	// ErrClientProtocol is a client that broke the stream protocol badly
	// enough to make the stream server fail.
	ErrClientProtocol = errors.New("client broke the stream protocol")
)

// ServeRemoteCommand terminates a client's exec or attach request, over
// SPDY/3.1 or any WebSocket channel protocol, and re-originates it toward
// the apiserver over SPDY (falling back to WebSocket; see
// newUpstreamExecutor). Both sides are
// decoded: the Tap sees stdin, stdout, stderr and resizes as they cross.
func ServeRemoteCommand(w http.ResponseWriter, req *http.Request, cfg RemoteCommandConfig) (res RemoteCommandResult) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	r := &relay{cfg: cfg, result: RemoteCommandResult{ExitCode: -1}}
	defer func() {
		// cri-streaming can panic on a client that omits the error stream
		// (it counts streams, not their types); the session is over then,
		// but its outcome must still reach the audit event.
		p := recover()
		r.mu.Lock()
		defer r.mu.Unlock()
		switch {
		case p != nil:
			cfg.Log.Warn("stream server failed on the client's streams", "panic", p)
			if r.result.Err == nil {
				r.result.Err = fmt.Errorf("%w: %v", ErrClientProtocol, p)
			}
		case !r.ran && r.result.Err == nil:
			r.result.Err = ErrNoSession
		}
		res = r.result
	}()
	opts := &serverremotecommand.Options{Stdin: cfg.Stdin, Stdout: cfg.Stdout, Stderr: cfg.Stderr && !cfg.TTY, TTY: cfg.TTY}
	if wsstream.IsWebSocketRequest(req) {
		serveWebSocket(w, req, opts, r)
	} else {
		r.setProtocol("SPDY/3.1")
		if cfg.Attach {
			serverremotecommand.ServeAttach(w, req, r, "", "", "", opts, streamIdleTimeout, streamCreationTimeout, serverremotecommand.SupportedStreamingProtocols)
		} else {
			serverremotecommand.ServeExec(w, req, r, "", "", "", cfg.Command, opts, streamIdleTimeout, streamCreationTimeout, serverremotecommand.SupportedStreamingProtocols)
		}
		if v := w.Header().Get(httpstream.HeaderProtocolVersion); v != "" {
			r.setProtocol("SPDY/3.1 " + v)
		}
	}
	return r.result // replaced by the deferred function
}

// relay is the client-side server's Executor and Attacher: it runs the
// session against the apiserver.
type relay struct {
	cfg RemoteCommandConfig

	mu     sync.Mutex
	ran    bool // the streams were established and the session started
	result RemoteCommandResult
}

var (
	_ serverremotecommand.Executor = (*relay)(nil)
	_ serverremotecommand.Attacher = (*relay)(nil)
)

func (r *relay) setProtocol(p string) {
	r.mu.Lock()
	r.result.Protocol = p
	r.mu.Unlock()
}

// ExecInContainer implements serverremotecommand.Executor.
func (r *relay) ExecInContainer(ctx context.Context, _, _, _ string, _ []string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan serverremotecommand.TerminalSize, _ time.Duration) error {
	return r.run(ctx, in, out, errOut, tty, resize)
}

// AttachContainer implements serverremotecommand.Attacher.
func (r *relay) AttachContainer(ctx context.Context, _, _, _ string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan serverremotecommand.TerminalSize) error {
	return r.run(ctx, in, out, errOut, tty, resize)
}

// run streams the session upstream. Its error is what the client-side
// server reports on the error channel: an exit error becomes the
// NonZeroExitCode status, anything else an internal error.
func (r *relay) run(ctx context.Context, in io.Reader, out, errOut io.Writer, tty bool, resize <-chan serverremotecommand.TerminalSize) error {
	r.mu.Lock()
	r.ran = true
	r.mu.Unlock()
	// The upstream URL asks for the streams the client asked for; a client
	// that did not open one of them gets an empty or discarding stand-in, so
	// the upstream does not wait for a stream that never comes.
	if in == nil && r.cfg.Stdin {
		in = strings.NewReader("")
	}
	if out == nil && r.cfg.Stdout {
		out = io.Discard
	}
	if errOut == nil && r.cfg.Stderr && !tty {
		errOut = io.Discard
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	exec, err := newUpstreamExecutor(r.cfg.Upstream, r.cfg.URL)
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
		opts.TerminalSizeQueue = &sizeQueue{ctx: ctx, ch: resize, record: taps.resize}
	}
	err = exec.StreamWithContext(ctx, opts)
	for _, tw := range writers {
		tw.flush()
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	r.mu.Lock()
	r.result.RecordingErr = taps.err()
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

// newUpstreamExecutor speaks SPDY toward the apiserver and falls back to
// WebSocket when the SPDY upgrade is refused. SPDY comes first on purpose:
// with kube-apiserver 1.37 the v5 WebSocket path reset kubegate's upstream
// connection at the end of long sessions under load (twice in CI-like runs:
// "error reading from error stream: connection reset by peer"), losing the
// exit status, while the SPDY path is the one the apiserver itself uses
// toward kubelets. SPDY is a POST, so the caller's RBAC needs create on
// pods/exec or pods/attach: the verb kubegate's policy sees too.
func newUpstreamExecutor(cfg *rest.Config, u *url.URL) (clientremotecommand.Executor, error) {
	spdy, err := clientremotecommand.NewSPDYExecutor(cfg, http.MethodPost, u)
	if err != nil {
		return nil, err
	}
	ws, err := clientremotecommand.NewWebSocketExecutor(cfg, http.MethodGet, u.String())
	if err != nil {
		return nil, err
	}
	return clientremotecommand.NewFallbackExecutor(spdy, ws, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
}
