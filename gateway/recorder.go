package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"net/http"
)

// responseRecorder passes a response through while noting its status code
// and keeping up to maxCopy bytes of its body for the audit event.
type responseRecorder struct {
	http.ResponseWriter
	status  int
	maxCopy int
	keep    bool // set once the handler decides the body is worth keeping
	body    bytes.Buffer
	written int64
}

func newResponseRecorder(w http.ResponseWriter, maxCopy int) *responseRecorder {
	return &responseRecorder{ResponseWriter: w, maxCopy: maxCopy}
}

func (r *responseRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *responseRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.keep && r.body.Len() < r.maxCopy {
		n := min(len(p), r.maxCopy-r.body.Len())
		r.body.Write(p[:n])
	}
	n, err := r.ResponseWriter.Write(p)
	r.written += int64(n)
	return n, err
}

// truncated reports whether the kept body is shorter than what was sent.
func (r *responseRecorder) truncated() bool { return int64(r.body.Len()) < r.written }

func (r *responseRecorder) code() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

// Flush passes flushes on, so watches stream.
func (r *responseRecorder) Flush() {
	_ = http.NewResponseController(r.ResponseWriter).Flush()
}

// Hijack hands the connection over for upgraded streams (101).
func (r *responseRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := r.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("response writer cannot hijack")
	}
	if r.status == 0 {
		r.status = http.StatusSwitchingProtocols
	}
	return h.Hijack()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *responseRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
