package notify

import (
	"context"
	"net/http"
	"testing"
	"time"
)

var retryNow = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)

var retryAfterCases = []struct {
	in     string
	want   time.Duration
	wantOK bool
}{
	{"", 0, false},
	{"0", 0, true},
	{"7", 7 * time.Second, true},
	{" 120 ", 2 * time.Minute, true},
	{"99999999999999999999999", maxRetryAfter, true},
	{"-5", 0, false},
	{"1.5", 0, false},
	{"soon", 0, false},
	{retryNow.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
	{retryNow.Add(-time.Hour).Format(http.TimeFormat), 0, true},
	{"Wed, 01 Jul 2026 12:00:30 GMT", 30 * time.Second, true},
	{"Wednesday, 01-Jul-26 12:00:30 GMT", 30 * time.Second, true}, // RFC 850
	{"Wed Jul  1 12:00:30 2026", 30 * time.Second, true},          // asctime
	{"Wed, 01 Jul 2099 12:00:30 GMT", maxRetryAfter, true},
}

func TestParseRetryAfter(t *testing.T) {
	for _, tc := range retryAfterCases {
		got, ok := parseRetryAfter(tc.in, retryNow)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.wantOK)
		}
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		status     int
		retryAfter string
		delivered  bool
		retry      bool
		wantAfter  bool
	}{
		{200, "", true, false, false},
		{204, "", true, false, false},
		{301, "", false, false, false},
		{400, "", false, false, false},
		{404, "5", false, false, false},
		{408, "", false, false, false},
		{429, "", false, true, false},
		{429, "5", false, true, true},
		{500, "5", false, true, false}, // Retry-After is honoured on 429 and 503 only
		{502, "", false, true, false},
		{503, "5", false, true, true},
	} {
		res := classify(tc.status, tc.retryAfter, retryNow)
		if (res.err == nil) != tc.delivered || res.retry != tc.retry || res.hasRetryAfter != tc.wantAfter {
			t.Errorf("classify(%d, %q) = %+v", tc.status, tc.retryAfter, res)
		}
	}
}

func TestBackoff(t *testing.T) {
	initial, maxWait := 500*time.Millisecond, 30*time.Second
	bases := []time.Duration{
		500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second,
		16 * time.Second, 30 * time.Second, 30 * time.Second,
	}
	for i, base := range bases {
		attempt := i + 1
		if got := backoff(attempt, initial, maxWait, 0); got != base/2 {
			t.Errorf("backoff(%d, jitter 0) = %v, want %v", attempt, got, base/2)
		}
		if got := backoff(attempt, initial, maxWait, 0.999999); got > base || got < base*99/100 {
			t.Errorf("backoff(%d, jitter ~1) = %v, want just under %v", attempt, got, base)
		}
		if got := backoff(attempt, initial, maxWait, jitter()); got < base/2 || got > base {
			t.Errorf("backoff(%d) = %v, want within [%v, %v]", attempt, got, base/2, base)
		}
	}
	if got := backoff(1000, initial, maxWait, 0.5); got < maxWait/2 || got > maxWait {
		t.Errorf("backoff after many attempts = %v, want at most %v", got, maxWait)
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := sleep(ctx, time.Hour); err != context.Canceled {
		t.Errorf("sleep on an ended context = %v", err)
	}
	if err := sleep(t.Context(), 0); err != nil {
		t.Errorf("sleep(0) = %v", err)
	}
}
