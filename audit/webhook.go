package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// WebhookConfig configures a WebhookSink.
type WebhookConfig struct {
	// Name names the sink (cursor file, logs, metrics). Empty means
	// "webhook".
	Name string
	// URL receives the batches. Required.
	URL string
	// Header is sent with every batch, e.g. Authorization. Its values
	// never appear in logs or errors.
	Header http.Header
	// Client sends the batches. Nil means one with a 30 s timeout.
	Client *http.Client
}

// WebhookSink POSTs batches of events as JSON lines
// (application/x-ndjson), each line an event exactly as the node wrote
// it. Headers say which events a batch holds: X-Kubegate-Node,
// X-Kubegate-First-Seq, X-Kubegate-Last-Seq, and Idempotency-Key
// "NODE:FIRST-LAST". A batch sent again after a crash may overlap one
// received before: receivers drop events whose kubegate.dev/audit-id they
// have seen. Any 2xx stores the batch; 429 and 503 are retried no sooner
// than their Retry-After; anything else is retried with backoff.
type WebhookSink struct {
	cfg WebhookConfig
}

var _ BatchSink = (*WebhookSink)(nil)

// NewWebhookSink checks cfg.
func NewWebhookSink(cfg WebhookConfig) (*WebhookSink, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("audit webhook: url %q: want an http(s) URL", cfg.URL)
	}
	if cfg.Name == "" {
		cfg.Name = "webhook"
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 30 * time.Second}
	}
	return &WebhookSink{cfg: cfg}, nil
}

// Name implements BatchSink.
func (s *WebhookSink) Name() string { return s.cfg.Name }

// Send implements BatchSink.
func (s *WebhookSink) Send(ctx context.Context, b *Batch) error {
	body := bytes.Join(b.Lines, []byte("\n"))
	body = append(body, '\n')
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, vs := range s.cfg.Header {
		req.Header[k] = vs
	}
	first, last := strconv.FormatUint(b.First, 10), strconv.FormatUint(b.Last, 10)
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("X-Kubegate-Node", b.Node)
	req.Header.Set("X-Kubegate-First-Seq", first)
	req.Header.Set("X-Kubegate-Last-Seq", last)
	req.Header.Set("Idempotency-Key", b.Node+":"+first+"-"+last)
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // the URL may hold credentials
		}
		return fmt.Errorf("audit webhook %s: %w", s.cfg.Name, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("audit webhook %s: %s", s.cfg.Name, resp.Status)
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return &RetryAfterError{After: d, Err: err}
		}
	}
	return err
}

// retryAfter reads a Retry-After header: seconds, or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}
