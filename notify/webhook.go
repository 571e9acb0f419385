package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Format is the body a Webhook posts.
type Format string

// Webhook body formats.
const (
	// FormatJSON posts the Event itself as JSON.
	FormatJSON Format = "json"
	// FormatSlack posts a message a Slack-compatible incoming webhook
	// accepts: fallback text plus mrkdwn section blocks.
	FormatSlack Format = "slack"
)

// WebhookConfig configures a Webhook. It is validated by NewWebhook and not
// used again after; the Headers map is copied.
type WebhookConfig struct {
	// URL is where events are posted, http or https. Required. Only its
	// scheme and host are ever logged: the path of a Slack webhook URL is
	// a secret.
	URL string
	// Format is the body posted. Empty means FormatJSON.
	Format Format
	// Headers are extra request headers, e.g. Authorization. Their values
	// are never logged. Content-Type, X-Kubegate-Event-Id and the
	// transport's own headers (Host, Content-Length, Transfer-Encoding,
	// Connection) are set by the webhook and may not be given. Nil means
	// none.
	Headers map[string]string
	// Timeout bounds each attempt, from sending the request to reading the
	// answer. Zero means 10s.
	Timeout time.Duration
	// MaxAttempts is how many times one event is tried before it is given
	// up and counted as failed. Zero means 8.
	MaxAttempts int
	// InitialBackoff is the wait before the first retry; each later retry
	// waits twice as long as the one before, up to MaxBackoff. Each wait is
	// a random duration between half and all of that (jitter). Zero means
	// 500ms.
	InitialBackoff time.Duration
	// MaxBackoff caps every wait between attempts, including one a
	// receiver asks for with Retry-After on a 429 or 503 answer. Zero means
	// 30s.
	MaxBackoff time.Duration
	// QueueSize is how many events may wait for delivery; Notify drops
	// events beyond it. Zero means 1024.
	QueueSize int
	// ShutdownTimeout bounds how long Run keeps delivering, retries
	// included, after its context ends. Zero means 5s.
	ShutdownTimeout time.Duration
	// Client sends the requests. Nil means a client that verifies TLS
	// against the system roots (TLS 1.2 or later), uses the proxy from the
	// environment and does not follow redirects.
	Client *http.Client
	// Log receives delivery failures and drops. Nil means slog.Default().
	Log *slog.Logger
	// Now is the clock for events without a Time and for Retry-After
	// dates. Nil means time.Now.
	Now func() time.Time
	// Sleep waits d between attempts, returning early with ctx's error if
	// ctx ends. Nil means a real timer.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Stats counts what became of the events given to a Webhook.
type Stats struct {
	// Delivered is how many events a receiver accepted with a 2xx answer.
	Delivered uint64
	// Failed is how many events were tried and given up: after
	// MaxAttempts, on an answer that is not retried (a 4xx other than 429,
	// a redirect), on a TLS verification error, or when shutdown ended
	// their retries.
	Failed uint64
	// Dropped is how many events were never tried: the queue was full, Run
	// had returned, or they were still queued when shutdown ended.
	Dropped uint64
}

// Webhook posts events to one URL. Notify queues, Run delivers; both are
// safe for concurrent use.
type Webhook struct {
	cfg    WebhookConfig
	client *http.Client
	header http.Header // User-Agent and cfg.Headers, canonicalised
	target string      // scheme://host of cfg.URL, the only part logged
	log    *slog.Logger
	queue  chan Event

	running atomic.Bool // Run has been called

	mu      sync.RWMutex // guards stopped against Notify's send
	stopped bool         // Run has returned; Notify drops

	delivered, failed, dropped atomic.Uint64
}

// ownHeaders are the request headers the webhook or the transport sets.
var ownHeaders = []string{"Content-Type", "X-Kubegate-Event-Id", "Host", "Content-Length", "Transfer-Encoding", "Connection"}

// NewWebhook validates cfg and fills in its defaults.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	target, err := checkURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	switch cfg.Format {
	case "":
		cfg.Format = FormatJSON
	case FormatJSON, FormatSlack:
	default:
		return nil, fmt.Errorf("notify: unknown webhook format %q (want %q or %q)", cfg.Format, FormatJSON, FormatSlack)
	}
	for name, v := range map[string]time.Duration{
		"timeout": cfg.Timeout, "initialBackoff": cfg.InitialBackoff,
		"maxBackoff": cfg.MaxBackoff, "shutdownTimeout": cfg.ShutdownTimeout,
	} {
		if v < 0 {
			return nil, fmt.Errorf("notify: webhook %s must not be negative", name)
		}
	}
	if cfg.MaxAttempts < 0 || cfg.QueueSize < 0 {
		return nil, errors.New("notify: webhook maxAttempts and queueSize must not be negative")
	}
	cfg.Timeout = orDefault(cfg.Timeout, 10*time.Second)
	cfg.InitialBackoff = orDefault(cfg.InitialBackoff, 500*time.Millisecond)
	cfg.MaxBackoff = orDefault(cfg.MaxBackoff, 30*time.Second)
	cfg.ShutdownTimeout = orDefault(cfg.ShutdownTimeout, 5*time.Second)
	cfg.MaxAttempts = orDefault(cfg.MaxAttempts, 8)
	cfg.QueueSize = orDefault(cfg.QueueSize, 1024)
	if cfg.InitialBackoff > cfg.MaxBackoff {
		return nil, fmt.Errorf("notify: webhook initialBackoff %s exceeds maxBackoff %s", cfg.InitialBackoff, cfg.MaxBackoff)
	}
	header, err := checkHeaders(cfg.Headers)
	if err != nil {
		return nil, err
	}
	cfg.Headers = nil // copied into header
	client := cfg.Client
	if client == nil {
		client = defaultClient()
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	return &Webhook{
		cfg:    cfg,
		client: client,
		header: header,
		target: target,
		log:    cfg.Log.With("webhook", target),
		queue:  make(chan Event, cfg.QueueSize),
	}, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// checkURL validates a webhook URL and returns the part that may be logged.
// Its errors never quote the URL.
func checkURL(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("notify: webhook URL is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the url.Error quotes the whole URL
		}
		return "", fmt.Errorf("notify: webhook URL is not valid: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", errors.New("notify: webhook URL must be http or https")
	}
	if u.Host == "" {
		return "", errors.New("notify: webhook URL has no host")
	}
	return u.Scheme + "://" + u.Host, nil
}

// checkHeaders validates the extra headers and returns them canonicalised,
// with kubegate's User-Agent unless they name one. Its errors name headers,
// never their values.
func checkHeaders(extra map[string]string) (http.Header, error) {
	h := http.Header{"User-Agent": {"kubegate-notify"}}
	seen := make(map[string]bool, len(extra))
	for name, value := range extra {
		if !validHeaderName(name) {
			return nil, fmt.Errorf("notify: webhook header name %q is not valid", name)
		}
		key := http.CanonicalHeaderKey(name)
		for _, own := range ownHeaders {
			if key == own {
				return nil, fmt.Errorf("notify: webhook header %s is set by kubegate and may not be configured", key)
			}
		}
		if seen[key] {
			return nil, fmt.Errorf("notify: webhook header %s is given twice", key)
		}
		seen[key] = true
		if !validHeaderValue(value) {
			return nil, fmt.Errorf("notify: webhook header %s has a value with control characters", key)
		}
		h.Set(key, value)
	}
	return h, nil
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue reports whether s holds no control characters but tab.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// defaultClient verifies TLS against the system roots and does not follow
// redirects: a webhook that moved should be reconfigured, not chased.
func defaultClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          4,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Notify queues ev without blocking the caller; a full queue drops the
// event, logs it and counts it. An event without a Time gets the current
// time, which also fixes its ID.
func (w *Webhook) Notify(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = w.cfg.Now()
	}
	w.mu.RLock()
	stopped, queued := w.stopped, false
	if !stopped {
		select {
		case w.queue <- ev:
			queued = true
		default:
		}
	}
	w.mu.RUnlock()
	if queued {
		return
	}
	w.dropped.Add(1)
	reason := "queue full"
	if stopped {
		reason = "webhook stopped"
	}
	w.log.Warn("notification dropped", "reason", reason, "event", ev.Type, "request", ev.RequestID)
}

// Run delivers queued events in order until ctx ends, then returns after
// trying to deliver what is queued for at most ShutdownTimeout. An attempt
// in flight when ctx ends is not cut short unless the shutdown timeout
// passes. Events still queued then, or given to Notify after Run returns,
// are dropped. Run returns nil once stopped by ctx; it may be called only
// once.
func (w *Webhook) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("notify: webhook Run called more than once")
	}
	// Deliveries use dctx, which outlives ctx by the shutdown timeout.
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	var wg sync.WaitGroup
	done := make(chan struct{})
	defer wg.Wait()
	defer close(done)
	wg.Go(func() { w.shutdownDeadline(ctx, done, cancel) })

	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case ev := <-w.queue:
			w.deliver(dctx, ev)
		}
	}
	for dctx.Err() == nil {
		select {
		case ev := <-w.queue:
			w.deliver(dctx, ev)
			continue
		default:
		}
		break
	}
	w.stop()
	return nil
}

// shutdownDeadline cancels deliveries ShutdownTimeout after ctx ends,
// unless Run is done first.
func (w *Webhook) shutdownDeadline(ctx context.Context, done <-chan struct{}, cancel context.CancelFunc) {
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	t := time.NewTimer(w.cfg.ShutdownTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		cancel()
	}
}

// stop makes Notify drop from now on and counts what is left in the queue.
func (w *Webhook) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	var n uint64
	for {
		select {
		case <-w.queue:
			n++
			continue
		default:
		}
		break
	}
	if n > 0 {
		w.dropped.Add(n)
		w.log.Warn("webhook stopped with notifications undelivered", "dropped", n)
	}
}

// Stats reports delivered, failed (given up) and dropped counts.
func (w *Webhook) Stats() Stats {
	return Stats{Delivered: w.delivered.Load(), Failed: w.failed.Load(), Dropped: w.dropped.Load()}
}

// deliver tries ev until it is delivered, cannot be, or ctx ends.
func (w *Webhook) deliver(ctx context.Context, ev Event) {
	id := ev.ID()
	log := w.log.With("event", ev.Type, "request", ev.RequestID, "eventID", id)
	body, err := w.encode(ev)
	if err != nil {
		w.failed.Add(1)
		log.Error("notification not encodable", "err", err)
		return
	}
	for attempt := 1; ; attempt++ {
		res := w.attempt(ctx, id, body)
		if res.err == nil {
			w.delivered.Add(1)
			log.Debug("notification delivered", "attempt", attempt)
			return
		}
		if ctx.Err() != nil {
			w.failed.Add(1)
			log.Warn("notification abandoned at shutdown", "attempt", attempt, "err", res.err)
			return
		}
		if !res.retry || attempt >= w.cfg.MaxAttempts {
			w.failed.Add(1)
			log.Warn("notification failed", "attempt", attempt, "retryable", res.retry, "err", res.err)
			return
		}
		d := backoff(attempt, w.cfg.InitialBackoff, w.cfg.MaxBackoff, jitter())
		if res.hasRetryAfter {
			d = min(res.retryAfter, w.cfg.MaxBackoff)
		}
		log.Info("notification attempt failed; retrying", "attempt", attempt, "wait", d, "err", res.err)
		if err := w.cfg.Sleep(ctx, d); err != nil {
			w.failed.Add(1)
			log.Warn("notification abandoned at shutdown", "attempt", attempt, "err", res.err)
			return
		}
	}
}

// encode renders ev in the configured format.
func (w *Webhook) encode(ev Event) ([]byte, error) {
	if w.cfg.Format == FormatSlack {
		return json.Marshal(slackMessage(ev))
	}
	return json.Marshal(ev)
}

// attemptResult is the outcome of one POST.
type attemptResult struct {
	err           error // nil: delivered
	retry         bool  // the failure may be retried
	retryAfter    time.Duration
	hasRetryAfter bool
}

// maxDrain bounds how much of an answer is read so the connection can be
// reused; the body itself is never logged (it might echo our headers).
const maxDrain = 64 << 10

// attempt posts body once.
func (w *Webhook) attempt(ctx context.Context, id string, body []byte) attemptResult {
	actx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return attemptResult{err: w.redact(err)}
	}
	req.Header = w.header.Clone()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Kubegate-Event-Id", id)
	resp, err := w.client.Do(req)
	if err != nil {
		return attemptResult{err: w.redact(err), retry: retryableError(ctx, err)}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	resp.Body.Close()
	return classify(resp.StatusCode, resp.Header.Get("Retry-After"), w.cfg.Now())
}

// redact replaces the URL a *url.Error quotes with scheme://host.
func (w *Webhook) redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		c := *ue
		c.URL = w.target
		return &c
	}
	return err
}
