package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/kubegate/kubegate/audit"
	"github.com/kubegate/kubegate/k8swire"
	"github.com/kubegate/kubegate/upgrade"
)

// ErrMasking is a response kubegate could not mask (a body that claims one
// content type and holds another, truncated protobuf, an oversized watch
// event). The client gets an error Status, never the unmasked bytes.
var ErrMasking = errors.New("response could not be masked")

// maxMaskedBody bounds a response body read whole to be masked (watches
// are masked event by event). A larger one fails closed.
const maxMaskedBody = 256 << 20

// maskState is what masking does to one request.
type maskState int

const (
	maskNone   maskState = iota // no rule or pattern applies
	maskOn                      // responses are masked
	maskExempt                  // rules apply, but the caller is exempt (audited)
)

// maskStateFor decides whether x's responses are masked.
func (g *Gateway) maskStateFor(x *exchange) maskState {
	m := g.cfg.Masker
	if m == nil || x.req == nil || !m.Applies(x.req) {
		return maskNone
	}
	if x.principal != nil {
		if _, ok := groupIn(x.principal.Groups, g.cfg.MaskExemptGroups); ok {
			return maskExempt
		}
	}
	return maskOn
}

// maskResponse masks an upstream response in place before the proxy copies
// it to the client: whole bodies at once, watch streams event by event as
// they arrive. It is the proxy's ModifyResponse.
func (g *Gateway) maskResponse(resp *http.Response) error {
	x := exchangeFrom(resp.Request.Context())
	if x == nil || x.mask != maskOn || resp.Body == nil || resp.Body == http.NoBody {
		return nil
	}
	if enc := resp.Header.Get("Content-Encoding"); enc != "" && enc != "identity" {
		return fmt.Errorf("%w: the apiserver answered with Content-Encoding %q", ErrMasking, enc)
	}
	ct := resp.Header.Get("Content-Type")
	if x.req.Verb == "watch" && resp.StatusCode == http.StatusOK {
		body := resp.Body
		pr, pw := io.Pipe()
		go func() {
			defer body.Close()
			// Each event is flushed on to the client by the proxy as soon
			// as it is written (FlushInterval -1).
			err := g.cfg.Masker.MaskWatch(x.req, ct, body, pw, nil)
			if err != nil {
				g.cfg.Log.Warn("masking a watch stream failed; the stream is cut", "request_id", x.id, "err", err)
				x.maskErr = err
			}
			pw.CloseWithError(err)
		}()
		resp.Body = pr
		resp.ContentLength = -1
		resp.Header.Del("Content-Length")
		return nil
	}
	if mt, _, _ := mime.ParseMediaType(ct); strings.HasPrefix(mt, "text/") {
		// Container logs (also followed, -f): value patterns, as for exec
		// output, chunk by chunk as they arrive.
		body, sm := resp.Body, g.cfg.Masker.NewStreamMasker()
		pr, pw := io.Pipe()
		go func() {
			defer body.Close()
			buf := make([]byte, 32<<10)
			for {
				n, err := body.Read(buf)
				if n > 0 {
					if _, werr := pw.Write(sm.Write(buf[:n])); werr != nil {
						return
					}
				}
				if err != nil {
					if errors.Is(err, io.EOF) {
						_, _ = pw.Write(sm.Flush())
						err = nil
					}
					pw.CloseWithError(err)
					return
				}
			}
		}()
		resp.Body = pr
		resp.ContentLength = -1
		resp.Header.Del("Content-Length")
		return nil
	}
	if x.req.Verb == "list" {
		if s := g.cfg.Masker.NewJSONStream(x.req, ct, maxMaskedBody); s != nil {
			return g.maskListStream(resp, x, s)
		}
	}
	defer resp.Body.Close()
	b, err := readResponse(resp, maxMaskedBody)
	if err != nil {
		return fmt.Errorf("reading the response to mask it: %w", err)
	}
	if len(b) > maxMaskedBody {
		return fmt.Errorf("%w: the response is over %d bytes", ErrMasking, maxMaskedBody)
	}
	masked, changed, err := g.cfg.Masker.MaskBody(x.req, ct, b)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMasking, err)
	}
	x.masked = changed
	resp.Body = io.NopCloser(bytes.NewReader(masked))
	resp.ContentLength = int64(len(masked))
	resp.Header.Set("Content-Length", strconv.Itoa(len(masked)))
	return nil
}

// streamListAfter is how much of a JSON list is read before what it masked
// is sent on as the rest is read: a shorter one is masked whole and can
// still be refused with a Status.
const streamListAfter = 256 << 10

// maskListStream masks a JSON list as it is read, item by item. Up to
// streamListAfter bytes, or the whole of a shorter response, are read
// first, so malformed input there gets an error Status as any other body.
// Past that, headers and the items masked so far are sent: input that cannot be masked later cuts the
// response (the client sees it end early), and the rest never leaves.
func (g *Gateway) maskListStream(resp *http.Response, x *exchange, s *k8swire.JSONStream) error {
	b := &maskedListBody{up: resp.Body, s: s, x: x, g: g, buf: make([]byte, 32<<10)}
	for b.read < streamListAfter && !b.done {
		if err := b.fill(); err != nil {
			resp.Body.Close()
			return err
		}
	}
	if b.done {
		x.masked = s.Changed()
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(b.out))
		resp.ContentLength = int64(len(b.out))
		resp.Header.Set("Content-Length", strconv.Itoa(len(b.out)))
		return nil
	}
	resp.Body = b
	resp.ContentLength = -1
	resp.Header.Del("Content-Length")
	return nil
}

// maskedListBody is a JSON list being masked as the proxy reads it.
type maskedListBody struct {
	up   io.ReadCloser
	s    *k8swire.JSONStream
	x    *exchange
	g    *Gateway
	buf  []byte
	out  []byte // masked bytes not yet read
	read int    // bytes read from the upstream
	done bool   // the input ended and all of it is in out
	err  error  // what ended the body early
}

// fill reads the next input and takes what it masked into out.
func (b *maskedListBody) fill() error {
	n, err := b.up.Read(b.buf)
	b.read += n
	if n > 0 {
		if merr := b.s.Write(b.buf[:n]); merr != nil {
			return fmt.Errorf("%w: %w", ErrMasking, merr)
		}
	}
	switch {
	case errors.Is(err, io.EOF):
		if merr := b.s.Close(); merr != nil {
			return fmt.Errorf("%w: %w", ErrMasking, merr)
		}
		b.done = true
	case err != nil:
		return fmt.Errorf("reading the response to mask it: %w", err)
	}
	b.out = append(b.out, b.s.Next()...)
	return nil
}

func (b *maskedListBody) Read(p []byte) (int, error) {
	for len(b.out) == 0 {
		switch {
		case b.err != nil:
			return 0, b.err
		case b.done:
			return 0, io.EOF
		}
		b.out = b.out[:0]
		if err := b.fill(); err != nil {
			b.err = err
			b.x.maskErr = err
			b.g.cfg.Log.Warn("masking a list failed after it was partly sent; the response is cut", "request_id", b.x.id, "err", err)
		}
		b.x.masked = b.s.Changed()
	}
	n := copy(p, b.out)
	b.out = b.out[n:]
	return n, nil
}

func (b *maskedListBody) Close() error { return b.up.Close() }

// outputFilter masks exec and attach output, when patterns apply.
func (g *Gateway) outputFilter(x *exchange) func() upgrade.OutputFilter {
	if x.mask != maskOn {
		return nil
	}
	return func() upgrade.OutputFilter { return g.cfg.Masker.NewStreamMasker() }
}

var _ upgrade.OutputFilter = (*k8swire.StreamMasker)(nil)

// maskingTap masks what a session recording stores: the input always (a
// typed secret), and the output too when the caller is exempt from
// masking (the client sees raw values; the recording never does). Output
// already masked on its way to the client passes as it is.
type maskingTap struct {
	SessionRecording
	in, out, errOut *k8swire.StreamMasker // nil: passes as it is
}

func (g *Gateway) maskRecording(rec SessionRecording, x *exchange) SessionRecording {
	m := g.cfg.Masker
	if m == nil || rec == nil {
		return rec
	}
	t := &maskingTap{SessionRecording: rec, in: m.NewStreamMasker()}
	if x.mask == maskExempt {
		t.out, t.errOut = m.NewStreamMasker(), m.NewStreamMasker()
	}
	return t
}

func (t *maskingTap) Input(p []byte) error { return t.SessionRecording.Input(t.in.Write(p)) }

func (t *maskingTap) Output(p []byte) error {
	if t.out != nil {
		p = t.out.Write(p)
	}
	return t.SessionRecording.Output(p)
}

func (t *maskingTap) ErrorOutput(p []byte) error {
	if t.errOut != nil {
		p = t.errOut.Write(p)
	}
	return t.SessionRecording.ErrorOutput(p)
}

// Exit records the exit status after what the maskers held back.
func (t *maskingTap) Exit(code int) error {
	t.flush()
	if e, ok := t.SessionRecording.(exitRecorder); ok {
		return e.Exit(code)
	}
	return nil
}

// Close stores what the maskers held back, then closes the recording.
func (t *maskingTap) Close() (audit.RecordingSummary, error) {
	t.flush()
	return t.SessionRecording.Close()
}

func (t *maskingTap) flush() {
	_ = t.SessionRecording.Input(t.in.Flush())
	if t.out != nil {
		_ = t.SessionRecording.Output(t.out.Flush())
		_ = t.SessionRecording.ErrorOutput(t.errOut.Flush())
	}
}

// readResponse reads resp's body up to limit+1 bytes (so that a longer one
// shows), into a buffer of the size the Content-Length announces, where
// it is known and within limit: io.ReadAll grows its buffer from 512
// bytes, copying the body on each step.
func readResponse(resp *http.Response, limit int64) ([]byte, error) {
	size := int64(512)
	if resp.ContentLength >= 0 && resp.ContentLength <= limit {
		size = resp.ContentLength + 1 // room to read the EOF without growing
	}
	b := make([]byte, 0, size)
	r := io.LimitReader(resp.Body, limit+1)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}
