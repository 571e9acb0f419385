package gateway

import (
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
)

// retryTransport sends a request without a body once more when the
// connection it went out on turned out to be dead before any answer: the
// pooled HTTP/2 connection to the apiserver can be closed under the
// request ("use of closed network connection"), and Go's transport does
// not always retry that itself. Only methods that are safe to repeat
// (GET, HEAD, OPTIONS) and carry no body are retried, once.
type retryTransport struct {
	rt http.RoundTripper
}

func (t retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(req)
	if err == nil || !retryable(req, err) {
		return resp, err
	}
	return t.rt.RoundTrip(req)
}

// retryable reports whether req may be sent again after err.
func retryable(req *http.Request, err error) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		return false
	}
	if req.Body != nil && req.Body != http.NoBody {
		return false
	}
	if req.Context().Err() != nil {
		return false
	}
	return errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}
