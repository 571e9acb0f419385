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
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxMaskedBody+1))
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
