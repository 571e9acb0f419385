package gateway

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/kubegate/kubegate/k8swire"
)

// ErrBodyTimeout is a request body that did not arrive within the body
// read timeout (a slowloris body).
var ErrBodyTimeout = errors.New("request body not received in time")

// boundBody bounds how long reading r's body may take, for requests that
// are not long-running (watches, logs, proxies and exec, attach and
// port-forward streams go on as long as they need): it sets a read
// deadline on the client's connection (the HTTP/2 stream) and clears it
// once the body is read to its end, so that the server's wait for the
// client to go away does not cut off a slow response. A body that misses the deadline fails with ErrBodyTimeout, which is
// also noted in x for the proxy's error handler (the transport reports a
// failed body as its own error).
//
// It returns a copy of r with the wrapped body: the server's own request
// must keep its body, by which it knows whether the body was closed
// unread and the connection cannot be reused (a smuggled request would
// follow on it).
func (g *Gateway) boundBody(w http.ResponseWriter, r *http.Request, x *exchange, req *k8swire.Request) *http.Request {
	if g.cfg.BodyReadTimeout <= 0 || r.Body == nil || r.Body == http.NoBody || (req != nil && longRunning(req)) {
		return r
	}
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(g.cfg.Now().Add(g.cfg.BodyReadTimeout)); err != nil {
		return r // the writer cannot bound reads (tests' recorders); nothing to clear
	}
	out := r.WithContext(r.Context())
	out.Body = &deadlineBody{ReadCloser: r.Body, rc: rc, x: x, timeout: g.cfg.BodyReadTimeout}
	return out
}

// deadlineBody is a request body read under a deadline.
type deadlineBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	x       *exchange
	timeout time.Duration
	clear   sync.Once
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		b.clearDeadline()
	case err != nil && isTimeout(err):
		err = fmt.Errorf("%w: the body was not sent within %s", ErrBodyTimeout, b.timeout)
		b.x.bodyTimedOut.Store(true)
	}
	return n, err
}

// Close keeps the deadline of a body not read to its end: the server
// drains what is left of it, and a slow client must not stall that.
func (b *deadlineBody) Close() error {
	return b.ReadCloser.Close()
}

func (b *deadlineBody) clearDeadline() {
	b.clear.Do(func() { _ = b.rc.SetReadDeadline(time.Time{}) })
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// longRunning reports whether req may last as long as it needs, as the
// apiserver judges it (its long-running request check): watches, proxies,
// logs and exec, attach and port-forward.
func longRunning(req *k8swire.Request) bool {
	switch {
	case req.Verb == "watch" || req.Verb == "proxy" || req.Upgrade != k8swire.NoUpgrade:
		return true
	case !req.IsResourceRequest:
		return false
	}
	switch req.Subresource {
	case "exec", "attach", "portforward", "proxy", "log":
		return true
	}
	return false
}

// streaming reports whether req holds a stream open that counts toward
// the principal's concurrent streams: an exec, attach or port-forward
// session, a watch or a followed log.
func streaming(req *k8swire.Request, r *http.Request) bool {
	switch {
	case req.Stream != nil && req.Upgrade != k8swire.NoUpgrade, req.Verb == "watch":
		return true
	case req.IsResourceRequest && req.Resource == "pods" && req.Subresource == "log":
		return k8swire.BoolParam(r.URL.Query()["follow"])
	}
	return false
}
