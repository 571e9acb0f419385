package upgrade

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/gorilla/websocket"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	clientremotecommand "k8s.io/client-go/tools/remotecommand"
	serverremotecommand "k8s.io/cri-streaming/pkg/streaming/remotecommand"
	streamhttp "k8s.io/streaming/pkg/httpstream"
	utilexec "k8s.io/utils/exec"
)

// chanClose is v5.channel.k8s.io's close signal: [255, channel].
const chanClose = 255

// errUpstreamProtocol is an upstream session that broke the protocol.
var errUpstreamProtocol = errors.New("the apiserver broke the v5.channel.k8s.io protocol")

// maxUpstreamStatus bounds the exit status the apiserver sends on the
// error channel.
const maxUpstreamStatus = 64 << 10

// wsWriteBuffers are shared by every upstream WebSocket connection: a
// connection holds one only while it writes a message.
var wsWriteBuffers = &sync.Pool{}

// stdinBufSize is the buffer an upstream session reads its client's stdin
// into; it is held while the session waits for input, so it is small.
const stdinBufSize = 8 << 10

// wsExecutor runs an exec or attach session toward the apiserver over
// WebSocket, v5.channel.k8s.io, and sends no pings (see
// newUpstreamExecutor). A session holds no buffer while it is idle but the
// one its stdin is read into.
type wsExecutor struct {
	cfg    *rest.Config
	url    *url.URL
	tls    *tls.Config     // shared by sessions; never changed
	status *upstreamStatus // told the protocol once connected
}

var _ clientremotecommand.Executor = (*wsExecutor)(nil)

// newWSExecutor prepares a session toward u with tlsConfig (see
// UpstreamTLS) and cfg's proxy and credentials.
func newWSExecutor(cfg *rest.Config, u *url.URL, status *upstreamStatus, tlsConfig *tls.Config) (*wsExecutor, error) {
	return &wsExecutor{cfg: cfg, url: u, tls: tlsConfig, status: status}, nil
}

// DialWebSocket opens a WebSocket connection to u, an https URL, with
// cfg's TLS settings, proxy and credentials: client-go's wrappers add the
// bearer token and impersonation headers to hdr, then d dials (d's proxy
// is set here, and its TLS config when d has none: a caller that dials
// often passes a shared one from UpstreamTLS). A refused handshake
// returns websocket.ErrBadHandshake with the server's response, its body
// unread and the caller's to close.
func DialWebSocket(ctx context.Context, cfg *rest.Config, u *url.URL, hdr http.Header, d websocket.Dialer) (*websocket.Conn, *http.Response, error) {
	if d.TLSClientConfig == nil {
		tlsConfig, err := rest.TLSConfigFor(cfg)
		if err != nil {
			return nil, nil, fmt.Errorf("building the apiserver TLS config: %w", err)
		}
		d.TLSClientConfig = tlsConfig
	}
	d.Proxy = http.ProxyFromEnvironment
	if cfg.Proxy != nil {
		d.Proxy = cfg.Proxy
	}
	dial := &wsDial{dialer: d}
	rt, err := rest.HTTPWrappersForConfig(cfg, dial)
	if err != nil {
		return nil, nil, fmt.Errorf("building the apiserver credentials: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil, err
	}
	if hdr != nil {
		req.Header = hdr.Clone()
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, dial.resp, err
	}
	return dial.conn, resp, nil
}

// wsDial is the innermost round tripper of DialWebSocket: it dials and
// keeps the connection, or the response of a refused handshake.
type wsDial struct {
	dialer websocket.Dialer
	conn   *websocket.Conn
	resp   *http.Response
}

func (d *wsDial) RoundTrip(req *http.Request) (*http.Response, error) {
	u := *req.URL
	switch u.Scheme {
	case "https":
		u.Scheme = "wss"
	case "http":
		u.Scheme = "ws"
	default:
		return nil, fmt.Errorf("unknown URL scheme %q", u.Scheme)
	}
	conn, resp, err := d.dialer.DialContext(req.Context(), u.String(), req.Header)
	if err != nil {
		if resp != nil && resp.Body == nil {
			resp.Body = http.NoBody
		}
		d.resp = resp
		return nil, err
	}
	d.conn = conn
	return resp, nil
}

// dial opens the session's connection; a refused upgrade is an upgrade
// failure, which lets the caller fall back to SPDY.
func (e *wsExecutor) dial(ctx context.Context) (*websocket.Conn, error) {
	conn, resp, err := DialWebSocket(ctx, e.cfg, e.url, nil, websocket.Dialer{
		TLSClientConfig: e.tls,
		Subprotocols:    []string{wsProtocolV5},
		ReadBufferSize:  4 << 10,
		WriteBufferPool: wsWriteBuffers,
		WriteBufferSize: 32<<10 + 1,
	})
	if err != nil {
		if !errors.Is(err, websocket.ErrBadHandshake) {
			return nil, err
		}
		cause := err
		if resp != nil {
			cause = fmt.Errorf("%w (%s)", err, resp.Status)
			_ = resp.Body.Close()
		}
		return nil, &streamhttp.UpgradeFailureError{Cause: cause}
	}
	_ = resp.Body.Close()
	if conn.Subprotocol() != wsProtocolV5 {
		_ = conn.Close()
		return nil, &streamhttp.UpgradeFailureError{Cause: fmt.Errorf("the apiserver chose stream protocol %q, not %s", conn.Subprotocol(), wsProtocolV5)}
	}
	e.status.setProtocol("websocket " + wsProtocolV5)
	return conn, nil
}

// Stream is StreamWithContext without a context.
func (e *wsExecutor) Stream(opts clientremotecommand.StreamOptions) error {
	return e.StreamWithContext(context.Background(), opts)
}

// StreamWithContext runs the session until the apiserver ends it, and
// returns its exit status: nil, a utilexec.CodeExitError, or the failure.
// A session that ends without a status, cleanly or not, is
// ErrUpstreamNoStatus (wrapping the connection's error, if any).
func (e *wsExecutor) StreamWithContext(ctx context.Context, opts clientremotecommand.StreamOptions) error {
	conn, err := e.dial(ctx)
	if err != nil {
		return err
	}
	s := &wsSession{conn: conn}
	defer s.conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = s.conn.Close() })
	defer stop()
	if opts.Stdin != nil {
		go s.sendStdin(opts.Stdin)
	}
	if opts.TerminalSizeQueue != nil {
		go s.sendResizes(opts.TerminalSizeQueue)
	}
	status, err := s.receive(opts.Stdout, opts.Stderr)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if status != nil {
		return statusError(status)
	}
	switch {
	case err == nil:
		return ErrUpstreamNoStatus
	case errors.Is(err, errUpstreamProtocol):
		return err
	}
	return fmt.Errorf("%w: %w", ErrUpstreamNoStatus, err)
}

// wsSession is one upstream connection.
type wsSession struct {
	conn *websocket.Conn
	wmu  sync.Mutex // one writer at a time
}

// send writes one message on channel ch.
func (s *wsSession) send(ch byte, p []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	w, err := s.conn.NextWriter(websocket.BinaryMessage)
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte{ch}); err != nil {
		return err
	}
	if _, err := w.Write(p); err != nil {
		return err
	}
	return w.Close()
}

// sendStdin copies stdin to channel 0 and sends the close signal at its
// end, so the process sees end of input.
func (s *wsSession) sendStdin(in io.Reader) {
	buf := make([]byte, stdinBufSize)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			if s.send(chanStdin, buf[:n]) != nil {
				return
			}
		}
		if err != nil {
			_ = s.send(chanClose, []byte{chanStdin})
			return
		}
	}
}

// sendResizes sends each terminal size on channel 4.
func (s *wsSession) sendResizes(q clientremotecommand.TerminalSizeQueue) {
	for size := q.Next(); size != nil; size = q.Next() {
		b, err := json.Marshal(size)
		if err != nil || s.send(chanResize, b) != nil {
			return
		}
	}
}

// copyBuffers32 hold the buffer a session copies one output message
// through, only while it does.
var copyBuffers32 = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// receive reads messages until the connection ends, writing stdout and
// stderr as they come, and returns the Status of the error channel, if
// one came, and the error that ended the connection (nil for a clean
// close).
func (s *wsSession) receive(stdout, stderr io.Writer) (*metav1.Status, error) {
	var status bytes.Buffer
	gotStatus := false
	for {
		typ, r, err := s.conn.NextReader()
		if err != nil {
			if !gotStatus {
				if websocket.IsCloseError(err, websocket.CloseNormalClosure) {
					err = nil
				}
				return nil, err
			}
			// The status came; however the connection then ended, the
			// session is over.
			var st metav1.Status
			if jerr := json.Unmarshal(status.Bytes(), &st); jerr != nil {
				return nil, fmt.Errorf("%w: its exit status does not decode: %w", errUpstreamProtocol, jerr)
			}
			return &st, nil
		}
		if typ != websocket.BinaryMessage {
			return nil, fmt.Errorf("%w: a WebSocket message of type %d, not binary", errUpstreamProtocol, typ)
		}
		var ch [1]byte
		if _, err := io.ReadFull(r, ch[:]); err != nil {
			if errors.Is(err, io.EOF) {
				continue // an empty message carries nothing
			}
			return nil, err
		}
		var dst io.Writer
		switch ch[0] {
		case chanStdout:
			dst = stdout
		case chanStderr:
			dst = stderr
		case chanError:
			gotStatus = true
			if _, err := io.Copy(&status, io.LimitReader(r, maxUpstreamStatus+1-int64(status.Len()))); err != nil {
				return nil, err
			}
			if status.Len() > maxUpstreamStatus {
				return nil, fmt.Errorf("%w: an exit status over %d bytes", errUpstreamProtocol, maxUpstreamStatus)
			}
			continue
		case chanClose:
			continue // the server closing a channel: its data simply ends
		default:
			return nil, fmt.Errorf("%w: data on channel %d", errUpstreamProtocol, ch[0])
		}
		if dst == nil {
			return nil, fmt.Errorf("%w: data on channel %d, which the session did not ask for", errUpstreamProtocol, ch[0])
		}
		bp := copyBuffers32.Get().(*[]byte)
		err = copyMessage(dst, r, *bp)
		copyBuffers32.Put(bp)
		if err != nil {
			return nil, err
		}
	}
}

// copyMessage writes the rest of one message from r to dst in pieces of
// up to len(buf) bytes, each as much of the message as fits in buf. The
// WebSocket reader hands over a message one TLS record (16 KiB) or
// read-buffer's worth at a time; passing on whole messages instead makes
// fewer writes to the tap and the client, each of which costs a recording
// event, a client frame and a write to its socket. It waits only for bytes
// the sender has already framed as part of this message.
func copyMessage(dst io.Writer, r io.Reader, buf []byte) error {
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return nil
		default:
			return err
		}
	}
}

// statusError turns the apiserver's exit status into what client-go's
// executors return: nil for success, a CodeExitError for a non-zero exit
// code, else the failure's message.
func statusError(st *metav1.Status) error {
	if st.Status == metav1.StatusSuccess {
		return nil
	}
	if st.Reason == serverremotecommand.NonZeroExitCodeReason && st.Details != nil {
		for _, c := range st.Details.Causes {
			if c.Type != serverremotecommand.ExitCodeCauseType {
				continue
			}
			rc, err := strconv.Atoi(c.Message)
			if err != nil {
				return fmt.Errorf("%w: exit code %q is not a number", errUpstreamProtocol, c.Message)
			}
			return utilexec.CodeExitError{Err: fmt.Errorf("command terminated with non-zero exit code: %s", st.Message), Code: rc}
		}
	}
	return fmt.Errorf("error executing remote command: %s", st.Message)
}
