package notify

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// waitLimit bounds every wait in these tests. It is a deadline for a
// condition, never a duration anything is expected to take.
const waitLimit = 30 * time.Second

// received is one request a receiver saw.
type received struct {
	header http.Header
	body   []byte
}

// receiver is a real HTTP server standing in for a webhook endpoint. Its
// answer to the n-th request (1-based) is chosen by respond; nil answers
// 200.
type receiver struct {
	srv *httptest.Server
	got chan received

	mu      sync.Mutex
	n       int
	respond func(n int, w http.ResponseWriter, r *http.Request)
}

func newReceiver(t *testing.T, tlsServer bool, respond func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	t.Helper()
	rc := &receiver{got: make(chan received, 1024), respond: respond}
	rc.srv = httptest.NewUnstartedServer(http.HandlerFunc(rc.serve))
	rc.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // TLS handshake failures are expected in some tests
	if tlsServer {
		rc.srv.StartTLS()
	} else {
		rc.srv.Start()
	}
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	rc.n++
	n := rc.n
	rc.mu.Unlock()
	rc.got <- received{header: r.Header.Clone(), body: body}
	if rc.respond != nil {
		rc.respond(n, w, r)
	}
}

// requests is how many requests the receiver has seen.
func (rc *receiver) requests() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.n
}

// wait returns the next n requests, failing the test if they do not come.
func (rc *receiver) wait(t *testing.T, n int) []received {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	var out []received
	for len(out) < n {
		select {
		case r := <-rc.got:
			out = append(out, r)
		case <-deadline.C:
			t.Fatalf("receiver got %d requests, want %d", len(out), n)
		}
	}
	return out
}

// drained returns every request seen so far without waiting.
func (rc *receiver) drained() []received {
	var out []received
	for {
		select {
		case r := <-rc.got:
			out = append(out, r)
		default:
			return out
		}
	}
}

// sleepRecorder is the Sleep seam: it records the waits asked for and
// returns at once.
type sleepRecorder struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleepRecorder) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleepRecorder) waits() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

// lockedBuffer collects log output from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testLogger logs at debug level to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newTestWebhook fills in a test logger and a sleep recorder unless cfg
// has its own, and builds the webhook.
func newTestWebhook(t *testing.T, cfg WebhookConfig) (*Webhook, *sleepRecorder) {
	t.Helper()
	sr := &sleepRecorder{}
	if cfg.Log == nil {
		cfg.Log = testLogger(t)
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sr.Sleep
	}
	w, err := NewWebhook(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w, sr
}

// start runs w in the background; the returned stop cancels Run's context
// and waits for Run to return, so Stats are final afterwards.
func start(t *testing.T, w *Webhook) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		t.Helper()
		once.Do(func() {
			cancel()
			select {
			case err := <-errc:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(waitLimit):
				t.Fatal("Run did not return after its context was cancelled")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// deliverQueued runs w with a context that has already ended: Run delivers
// what is queued within the shutdown timeout and returns.
func deliverQueued(t *testing.T, w *Webhook) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := w.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// testEvent is a fully filled request.created event.
func testEvent(id string) Event {
	return Event{
		Type:              TypeRequestCreated,
		Time:              time.Date(2026, 7, 1, 12, 30, 0, 123456789, time.UTC),
		RequestID:         id,
		Kind:              KindHold,
		Requester:         "system:serviceaccount:agents:agent",
		Summary:           "delete deployments/web in namespace prod",
		Rule:              "prod-deletes-need-approval",
		Reason:            "rolling back a broken release",
		Approvals:         0,
		ApprovalsRequired: 2,
		ExpiresAt:         time.Date(2026, 7, 1, 12, 45, 0, 0, time.UTC),
		ApproveCommand:    "kubegate approve " + id + " --reason ...",
		DenyCommand:       "kubegate deny " + id + " --reason ...",
		Node:              "kubegate-0",
	}
}

func wantStats(t *testing.T, w *Webhook, want Stats) {
	t.Helper()
	if got := w.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}
