package notify

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestJSONRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"http", false}, {"https", true}} {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t, tc.tls, nil)
			cfg := WebhookConfig{URL: rc.srv.URL + "/hooks/kubegate", Headers: map[string]string{"Authorization": "Bearer s3cret"}}
			if tc.tls {
				cfg.Client = rc.srv.Client()
			}
			w, _ := newTestWebhook(t, cfg)
			stop := start(t, w)
			full := testEvent("1234")
			bare := Event{Type: TypeRequestExpired, Time: full.Time, RequestID: "1234", Kind: KindGrant}
			w.Notify(full)
			w.Notify(bare)
			got := rc.wait(t, 2)
			stop()
			wantStats(t, w, Stats{Delivered: 2})

			for i, want := range []Event{full, bare} {
				r := got[i]
				var ev Event
				if err := json.Unmarshal(r.body, &ev); err != nil {
					t.Fatalf("decoding %s: %v", r.body, err)
				}
				if !reflect.DeepEqual(ev, want) {
					t.Errorf("received %+v\nwant     %+v", ev, want)
				}
				for name, v := range map[string]string{
					"Content-Type":        "application/json",
					"X-Kubegate-Event-Id": want.ID(),
					"Authorization":       "Bearer s3cret",
				} {
					if g := r.header.Get(name); g != v {
						t.Errorf("header %s = %q, want %q", name, g, v)
					}
				}
			}
			var raw map[string]any
			if err := json.Unmarshal(got[1].body, &raw); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"expiresAt", "rule", "approveCommand", "approvals"} {
				if _, ok := raw[k]; ok {
					t.Errorf("empty %s is in the JSON: %s", k, got[1].body)
				}
			}
		})
	}
}

func TestNotifyFillsTime(t *testing.T) {
	rc := newReceiver(t, false, nil)
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	w, _ := newTestWebhook(t, WebhookConfig{URL: rc.srv.URL, Now: func() time.Time { return now }})
	w.Notify(Event{Type: TypeRequestDenied, RequestID: "r/1 x"})
	deliverQueued(t, w)
	r := rc.wait(t, 1)[0]
	var ev Event
	if err := json.Unmarshal(r.body, &ev); err != nil {
		t.Fatal(err)
	}
	if !ev.Time.Equal(now) {
		t.Errorf("time = %v, want %v", ev.Time, now)
	}
	if id, want := r.header.Get("X-Kubegate-Event-Id"), "r%2F1%20x/request.denied/"+fmt.Sprint(now.UnixNano()); id != want {
		t.Errorf("event id = %q, want %q", id, want)
	}
}

func TestRetriesThenDelivers(t *testing.T) {
	rc := newReceiver(t, false, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	w, sleeps := newTestWebhook(t, WebhookConfig{URL: rc.srv.URL, InitialBackoff: time.Second, MaxBackoff: time.Minute})
	stop := start(t, w)
	w.Notify(testEvent("42"))
	got := rc.wait(t, 3)
	stop()
	wantStats(t, w, Stats{Delivered: 1})
	if n := rc.requests(); n != 3 {
		t.Errorf("receiver saw %d attempts, want 3", n)
	}
	id := got[0].header.Get("X-Kubegate-Event-Id")
	for i, r := range got {
		if g := r.header.Get("X-Kubegate-Event-Id"); g != id || g == "" {
			t.Errorf("attempt %d event id = %q, want %q on every attempt", i+1, g, id)
		}
		if string(r.body) != string(got[0].body) {
			t.Errorf("attempt %d body differs from the first", i+1)
		}
	}
	// Exponential with jitter: the n-th wait lies in [base/2, base].
	ws := sleeps.waits()
	if len(ws) != 2 {
		t.Fatalf("waits = %v, want 2", ws)
	}
	for i, base := range []time.Duration{time.Second, 2 * time.Second} {
		if ws[i] < base/2 || ws[i] > base {
			t.Errorf("wait %d = %v, want within [%v, %v]", i+1, ws[i], base/2, base)
		}
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	now := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	answers := []func(http.ResponseWriter){
		func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
		},
		func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", now.Add(3*time.Second).Format(http.TimeFormat))
			w.WriteHeader(http.StatusServiceUnavailable)
		},
		func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusTooManyRequests)
		},
		func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
		},
		func(w http.ResponseWriter) {},
	}
	rc := newReceiver(t, false, func(n int, w http.ResponseWriter, _ *http.Request) { answers[n-1](w) })
	w, sleeps := newTestWebhook(t, WebhookConfig{
		URL: rc.srv.URL, MaxBackoff: 20 * time.Second, Now: func() time.Time { return now },
	})
	w.Notify(testEvent("1"))
	deliverQueued(t, w)
	wantStats(t, w, Stats{Delivered: 1})
	want := []time.Duration{7 * time.Second, 3 * time.Second, 20 * time.Second, 0}
	if got := sleeps.waits(); !reflect.DeepEqual(got, want) {
		t.Errorf("waits = %v, want %v (Retry-After, capped at MaxBackoff)", got, want)
	}
}

func TestClientErrorNotRetried(t *testing.T) {
	for _, status := range []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusNotFound, http.StatusFound} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			rc := newReceiver(t, false, func(_ int, w http.ResponseWriter, _ *http.Request) {
				if status == http.StatusFound {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(status)
			})
			w, sleeps := newTestWebhook(t, WebhookConfig{URL: rc.srv.URL})
			w.Notify(testEvent("1"))
			w.Notify(testEvent("2"))
			deliverQueued(t, w)
			wantStats(t, w, Stats{Failed: 2})
			if n := rc.requests(); n != 2 {
				t.Errorf("receiver saw %d requests, want 2 (one per event, no retries)", n)
			}
			if ws := sleeps.waits(); len(ws) != 0 {
				t.Errorf("waited %v; a %d must not be retried", ws, status)
			}
		})
	}
}

func TestReceiverDownGivesUp(t *testing.T) {
	rc := newReceiver(t, false, nil)
	url := rc.srv.URL + "/services/T000/B000/PATHSECRET?token=QUERYSECRET"
	rc.srv.Close()
	var logs lockedBuffer
	w, sleeps := newTestWebhook(t, WebhookConfig{
		URL: url, MaxAttempts: 4,
		Headers: map[string]string{"Authorization": "Bearer HEADERSECRET"},
		Log:     slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	w.Notify(testEvent("1"))
	deliverQueued(t, w)
	wantStats(t, w, Stats{Failed: 1})
	if ws := sleeps.waits(); len(ws) != 3 {
		t.Errorf("waits = %v, want 3 (between 4 attempts)", ws)
	}
	out := logs.String()
	if !strings.Contains(out, "notification failed") || !strings.Contains(out, strings.TrimPrefix(rc.srv.URL, "http://")) {
		t.Errorf("log does not report the failure and the host:\n%s", out)
	}
	for _, secret := range []string{"PATHSECRET", "QUERYSECRET", "HEADERSECRET"} {
		if strings.Contains(out, secret) {
			t.Errorf("log leaks %s:\n%s", secret, out)
		}
	}
}

func TestAttemptTimeout(t *testing.T) {
	rc := newReceiver(t, false, func(_ int, _ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	w, _ := newTestWebhook(t, WebhookConfig{URL: rc.srv.URL, Timeout: 20 * time.Millisecond, MaxAttempts: 2})
	w.Notify(testEvent("1"))
	deliverQueued(t, w)
	wantStats(t, w, Stats{Failed: 1})
	if n := rc.requests(); n != 2 {
		t.Errorf("receiver saw %d attempts, want 2", n)
	}
}

func TestTLSVerifiedByDefault(t *testing.T) {
	rc := newReceiver(t, true, nil)
	// No Client: the default one trusts only the system roots, not the
	// test server's certificate, and a verification failure is final.
	w, sleeps := newTestWebhook(t, WebhookConfig{URL: rc.srv.URL})
	w.Notify(testEvent("1"))
	deliverQueued(t, w)
	wantStats(t, w, Stats{Failed: 1})
	if n := rc.requests(); n != 0 {
		t.Errorf("receiver saw %d requests over an unverified connection", n)
	}
	if ws := sleeps.waits(); len(ws) != 0 {
		t.Errorf("waited %v; a certificate error must not be retried", ws)
	}
}

func TestQueueFullDrops(t *testing.T) {
	rc := newReceiver(t, false, nil)
	w, _ := newTestWebhook(t, WebhookConfig{URL: rc.srv.URL, QueueSize: 2})
	for i := range 5 {
		w.Notify(testEvent(fmt.Sprint(i)))
	}
	wantStats(t, w, Stats{Dropped: 3})
	deliverQueued(t, w)
	wantStats(t, w, Stats{Delivered: 2, Dropped: 3})
	for i, r := range rc.drained() {
		if id := r.header.Get("X-Kubegate-Event-Id"); !strings.HasPrefix(id, fmt.Sprintf("%d/", i)) {
			t.Errorf("delivery %d is event %q; the first two queued should be kept", i, id)
		}
	}
}

func TestRunStopsWhenCancelled(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		rc := newReceiver(t, false, nil)
		w, _ := newTestWebhook(t, WebhookConfig{URL: rc.srv.URL})
		stop := start(t, w)
		stop()
		w.Notify(testEvent("late"))
		wantStats(t, w, Stats{Dropped: 1})
		if err := w.Run(t.Context()); err == nil {
			t.Error("a second Run succeeded")
		}
	})
	t.Run("receiver hangs", func(t *testing.T) {
		release := make(chan struct{})
		rc := newReceiver(t, false, func(_ int, _ http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		})
		t.Cleanup(func() { close(release) })
		w, _ := newTestWebhook(t, WebhookConfig{URL: rc.srv.URL, ShutdownTimeout: 50 * time.Millisecond})
		stop := start(t, w)
		w.Notify(testEvent("1"))
		rc.wait(t, 1)
		w.Notify(testEvent("2"))
		stop() // returns once the shutdown timeout cuts the attempt short
		wantStats(t, w, Stats{Failed: 1, Dropped: 1})
	})
}

func TestOrderPreserved(t *testing.T) {
	const n = 60
	rc := newReceiver(t, false, func(k int, w http.ResponseWriter, _ *http.Request) {
		if k%4 == 0 {
			w.WriteHeader(http.StatusBadGateway) // retried in place
		}
	})
	w, _ := newTestWebhook(t, WebhookConfig{URL: rc.srv.URL})
	stop := start(t, w)
	for i := range n {
		w.Notify(testEvent(fmt.Sprint(i)))
	}
	var order []string
	for len(order) < n {
		r := rc.wait(t, 1)[0]
		id := strings.SplitN(r.header.Get("X-Kubegate-Event-Id"), "/", 2)[0]
		if len(order) == 0 || order[len(order)-1] != id {
			order = append(order, id)
		}
	}
	stop()
	wantStats(t, w, Stats{Delivered: n})
	for i, id := range order {
		if id != fmt.Sprint(i) {
			t.Fatalf("delivery order %v", order)
		}
	}
}

func TestNewWebhookValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  WebhookConfig
		want string
	}{
		{"no url", WebhookConfig{}, "URL is required"},
		{"bad url", WebhookConfig{URL: "https://hooks.example/%zzSECRET"}, "not valid"},
		{"scheme", WebhookConfig{URL: "ftp://user:SECRET@hooks.example/x"}, "http or https"},
		{"no host", WebhookConfig{URL: "https:///SECRET"}, "no host"},
		{"format", WebhookConfig{URL: "https://h", Format: "xml"}, "unknown webhook format"},
		{"timeout", WebhookConfig{URL: "https://h", Timeout: -1}, "timeout must not be negative"},
		{"attempts", WebhookConfig{URL: "https://h", MaxAttempts: -1}, "must not be negative"},
		{"queue", WebhookConfig{URL: "https://h", QueueSize: -1}, "must not be negative"},
		{"backoff order", WebhookConfig{URL: "https://h", InitialBackoff: time.Minute}, "exceeds maxBackoff"},
		{"header name", WebhookConfig{URL: "https://h", Headers: map[string]string{"Bad Name": "SECRET"}}, "not valid"},
		{"header value", WebhookConfig{URL: "https://h", Headers: map[string]string{"Authorization": "SECRET\r\nX: y"}}, "control characters"},
		{"own header", WebhookConfig{URL: "https://h", Headers: map[string]string{"content-type": "SECRET"}}, "set by kubegate"},
		{"twice", WebhookConfig{URL: "https://h", Headers: map[string]string{"x-token": "SECRET", "X-Token": "SECRET"}}, "given twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewWebhook(tc.cfg)
			if err == nil {
				t.Fatal("NewWebhook succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to mention %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("error %q quotes a secret", err)
			}
		})
	}
	w, err := NewWebhook(WebhookConfig{URL: "https://hooks.example/x"})
	if err != nil {
		t.Fatal(err)
	}
	c := w.cfg
	if c.Format != FormatJSON || c.Timeout != 10*time.Second || c.MaxAttempts != 8 || c.InitialBackoff != 500*time.Millisecond ||
		c.MaxBackoff != 30*time.Second || c.QueueSize != 1024 || c.ShutdownTimeout != 5*time.Second {
		t.Errorf("defaults = %+v", c)
	}
}

type recordingNotifier struct{ got []Event }

func (r *recordingNotifier) Notify(ev Event) { r.got = append(r.got, ev) }

func TestMultiFansOut(t *testing.T) {
	a, b := &recordingNotifier{}, &recordingNotifier{}
	m := Multi{a, nil, b}
	ev := testEvent("7")
	m.Notify(ev)
	for i, r := range []*recordingNotifier{a, b} {
		if len(r.got) != 1 || r.got[0] != ev {
			t.Errorf("notifier %d got %+v", i, r.got)
		}
	}
	Multi(nil).Notify(ev) // no notifiers is fine
}
