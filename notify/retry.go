package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// classify turns a receiver's answer into an attempt result: 2xx is
// delivered; 5xx and 429 are retried, 429 and 503 after the Retry-After
// the receiver gave, if any; everything else (other 4xx, redirects) is not
// retried.
func classify(status int, retryAfterHeader string, now time.Time) attemptResult {
	if status >= 200 && status < 300 {
		return attemptResult{}
	}
	res := attemptResult{err: fmt.Errorf("webhook answered %d %s", status, http.StatusText(status))}
	switch {
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		res.retry = true
		res.retryAfter, res.hasRetryAfter = parseRetryAfter(retryAfterHeader, now)
	case status >= 500:
		res.retry = true
	case status >= 300 && status < 400:
		res.err = fmt.Errorf("%w (redirects are not followed)", res.err)
	}
	return res
}

// retryableError reports whether a failed request is worth another try:
// network errors and per-attempt timeouts are, unless ctx (the delivery
// context) has ended or the server's certificate failed verification,
// which another try will not change.
func retryableError(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var cve *tls.CertificateVerificationError
	return !errors.As(err, &cve)
}

// maxRetryAfter bounds a parsed Retry-After so that multiplying by
// time.Second cannot overflow; the caller caps it at MaxBackoff anyway.
const maxRetryAfter = 24 * time.Hour

// parseRetryAfter reads a Retry-After value, delay-seconds or an HTTP date
// (RFC 9110 section 10.2.3). A date in the past means no wait. ok is false
// when the value is absent or malformed.
func parseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if isDigits(v) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true // only overflow fails on digits
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d = t.Sub(now)
	return min(max(d, 0), maxRetryAfter), true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// backoff is the wait after the given failed attempt (1-based):
// base = initial·2^(attempt-1) capped at maxWait, and the wait lies between
// base/2 and base, placed by j in [0, 1).
func backoff(attempt int, initial, maxWait time.Duration, j float64) time.Duration {
	base := initial
	for i := 1; i < attempt && base < maxWait; i++ {
		base *= 2
	}
	base = min(base, maxWait)
	half := base / 2
	return half + time.Duration(float64(base-half)*j)
}

// jitter is a random fraction in [0, 1).
func jitter() float64 { return rand.Float64() }

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
