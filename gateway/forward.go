package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"slices"
	"strings"
	"sync"
	"syscall"
	"unicode/utf8"

	"github.com/kubegate/kubegate/identity"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// newProxy builds the reverse proxy to the apiserver. The standard library
// strips hop-by-hop headers, including those the client names in
// Connection, before Rewrite runs; Rewrite then removes every credential
// the client sent and sets kubegate's impersonation headers, so no client
// header can remove or smuggle them.
func (g *Gateway) newProxy() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(g.cfg.Upstream)
			pr.Out.Host = g.cfg.Upstream.Host
			stripClientCredentials(pr.Out.Header)
			if x := exchangeFrom(pr.In.Context()); x != nil && x.principal != nil {
				setImpersonation(pr.Out.Header, x.principal)
				if x.mask == maskOn {
					// The client's Accept-Encoding would get an answer
					// compressed for it, which could not be masked. Without
					// it, Go's transport asks for gzip itself and
					// decompresses (measured faster than identity:
					// BenchmarkMaskList).
					pr.Out.Header.Del("Accept-Encoding")
				}
			}
		},
		ModifyResponse: g.maskResponse,
		Transport:      retryTransport{g.cfg.Transport},
		// Zero: a response whose length is known (every GET of one
		// object, every list) is written when the handler returns, in as
		// few frames and writes as the server can; the proxy itself
		// flushes every write of a response of unknown length (watches,
		// logs -f, and the masked watch and log streams, which drop
		// Content-Length), as FlushInterval -1 did for all.
		FlushInterval: 0,
		BufferPool:    copyBuffers{},
		ErrorLog:      nil,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			x := exchangeFrom(r.Context())
			if x != nil {
				x.upErr = err
			}
			if x != nil && x.bodyTimedOut.Load() {
				// The transport reports the client's slow body as its own
				// failure (or as the request's cancellation, as the server
				// cancels on a read error): it is the client's.
				x.upErr = nil
				err := fmt.Errorf("%w: the body was not sent within %s", ErrBodyTimeout, g.cfg.BodyReadTimeout)
				g.cfg.Metrics.limitRefused(err)
				w.Header().Set("Connection", "close")
				code, reason := statusFor(err)
				writeStatus(w, code, reason, "kubegate: "+err.Error(), x.id, x.req)
				return
			}
			if errors.Is(err, r.Context().Err()) {
				return // the client went away; there is no one to answer
			}
			id := ""
			if x != nil {
				id = x.id
			}
			if errors.Is(err, ErrMasking) {
				if x != nil {
					x.upErr, x.maskErr = nil, err
				}
				g.cfg.Log.Warn("response withheld: masking failed", "request_id", id, "err", err)
				writeStatus(w, http.StatusBadGateway, metav1.StatusReasonInternalError,
					"kubegate: the response could not be masked, so it is withheld: "+err.Error(), id, nil)
				return
			}
			code := http.StatusBadGateway
			if errors.Is(err, syscall.ECONNREFUSED) {
				code = http.StatusServiceUnavailable
			}
			g.cfg.Log.Warn("upstream request failed", "request_id", id, "err", err)
			_, reason := statusFor(ErrUpstream)
			writeStatus(w, code, reason, fmt.Sprintf("kubegate: the Kubernetes API server is unavailable: %v", err), id, nil)
		},
	}
}

// stripClientCredentials removes every header through which a client could
// authenticate or act as someone else upstream.
func stripClientCredentials(h http.Header) {
	for k := range h {
		ck := http.CanonicalHeaderKey(k)
		if ck == "Authorization" || ck == "Proxy-Authorization" ||
			strings.HasPrefix(ck, "Impersonate-") || strings.HasPrefix(ck, "X-Remote-") {
			delete(h, k)
		}
	}
}

// setImpersonation makes the apiserver apply the principal's RBAC.
func setImpersonation(h http.Header, p *identity.Principal) {
	h["Impersonate-User"] = []string{p.User}
	if len(p.Groups) > 0 {
		// The header shares the groups (the request's own copy of the
		// principal) rather than copy them one by one; clipped, so that
		// an Add to the header cannot write into them.
		h["Impersonate-Group"] = slices.Clip(p.Groups)
	}
	if p.UID != "" {
		h["Impersonate-Uid"] = []string{p.UID}
	}
	for k, vs := range p.Extra {
		key := "Impersonate-Extra-" + escapeExtraKey(k)
		for _, v := range vs {
			h.Add(key, v)
		}
	}
}

// escapeExtraKey percent-encodes an extra key as the apiserver expects in
// Impersonate-Extra-<key> header names (client-go does the same).
func escapeExtraKey(k string) string {
	if !strings.ContainsFunc(k, func(r rune) bool { return r >= utf8.RuneSelf || !isTokenChar(byte(r)) || r == '%' }) {
		return k
	}
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		c := k[i]
		if isTokenChar(c) && c != '%' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$&'*+-.^_`|~", c) >= 0
}

// copyBufferPool holds the buffers the proxy copies response bodies
// through: without a pool it allocated 32 KiB per response, over half of
// all bytes a GET allocates (BenchmarkServeGet).
var copyBufferPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyBuffers is copyBufferPool as the proxy's BufferPool.
type copyBuffers struct{}

var _ httputil.BufferPool = copyBuffers{}

func (copyBuffers) Get() []byte { return *copyBufferPool.Get().(*[]byte) }

func (copyBuffers) Put(b []byte) {
	if cap(b) == 32<<10 {
		b = b[:cap(b)]
		copyBufferPool.Put(&b)
	}
}
