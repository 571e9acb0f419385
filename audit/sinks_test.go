package audit

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestWebhookSinkPostsBatches(t *testing.T) {
	type got struct {
		header http.Header
		body   []byte
	}
	var received []got
	status, retry := http.StatusOK, ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		received = append(received, got{r.Header.Clone(), b})
		if retry != "" {
			w.Header().Set("Retry-After", retry)
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	s, err := NewWebhookSink(WebhookConfig{URL: srv.URL, Header: http.Header{"Authorization": {"Bearer s3cret"}}})
	if err != nil {
		t.Fatal(err)
	}
	b := &Batch{Node: "n1", First: 7, Last: 8, Lines: [][]byte{[]byte(`{"a":1}`), []byte(`{"b":2}`)}}
	if err := s.Send(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	r := received[0]
	if string(r.body) != "{\"a\":1}\n{\"b\":2}\n" {
		t.Errorf("body %q", r.body)
	}
	for k, v := range map[string]string{"Content-Type": "application/x-ndjson", "X-Kubegate-Node": "n1", "X-Kubegate-First-Seq": "7",
		"X-Kubegate-Last-Seq": "8", "Idempotency-Key": "n1:7-8", "Authorization": "Bearer s3cret"} {
		if r.header.Get(k) != v {
			t.Errorf("%s: %q, want %q", k, r.header.Get(k), v)
		}
	}

	status, retry = http.StatusServiceUnavailable, "3"
	err = s.Send(context.Background(), b)
	var ra *RetryAfterError
	if !errors.As(err, &ra) || ra.After != 3*time.Second {
		t.Errorf("503 with Retry-After: 3: %v", err)
	}
	status, retry = http.StatusBadRequest, ""
	if err := s.Send(context.Background(), b); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("400: %v", err)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{"0": 0, "120": 2 * time.Minute, "Mon, 23 Nov 2026 10:00:30 GMT": 30 * time.Second} {
		if d, ok := retryAfter(v, now); !ok || d != want {
			t.Errorf("retryAfter(%q) = %v, %t; want %v", v, d, ok, want)
		}
	}
	for _, v := range []string{"", "soon", "-1"} {
		if _, ok := retryAfter(v, now); ok {
			t.Errorf("retryAfter(%q) took it", v)
		}
	}
}

// TestS3SinkStoresRecordingsFirst: the recording files an event names are
// in the store before the batch that names them, under their day folder.
func TestS3SinkStoresRecordingsFirst(t *testing.T) {
	day := filepath.Join(t.TempDir(), "2026-11-23")
	if err := os.MkdirAll(day, 0o750); err != nil {
		t.Fatal(err)
	}
	cast, stderr := filepath.Join(day, "s1.cast"), filepath.Join(day, "s1.stderr.jsonl")
	os.WriteFile(cast, []byte("cast bytes"), 0o640)
	os.WriteFile(stderr, []byte("stderr bytes"), 0o640)
	store := &memStore{}
	s := NewS3Sink("", store)
	line := []byte(`{"annotations":{"kubegate.dev/recording":"` + cast + `","kubegate.dev/recording-stderr":"` + stderr + `"}}`)
	b := &Batch{Node: "n1", First: 1, Last: 2, Lines: [][]byte{[]byte(`{"x":1}`), line}}
	if err := s.Send(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	want := []string{"recordings/2026-11-23/s1.cast", "recordings/2026-11-23/s1.stderr.jsonl", "events/n1/00000000000000000001-00000000000000000002.jsonl"}
	if !slices.Equal(store.puts, want) {
		t.Errorf("puts %v, want %v", store.puts, want)
	}
	if got := store.objs[want[2]]; !bytes.Equal(got, append(append([]byte(`{"x":1}`+"\n"), line...), '\n')) {
		t.Errorf("batch object %q", got)
	}
	if string(store.objs[want[0]]) != "cast bytes" {
		t.Errorf("cast object %q", store.objs[want[0]])
	}
	os.Remove(cast)
	if err := s.Send(context.Background(), b); err == nil {
		t.Error("a batch naming a missing recording was stored")
	}
}
