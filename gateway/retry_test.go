package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
)

// flakyTransport fails its first n requests with err, then answers 200.
type flakyTransport struct {
	n     int
	err   error
	calls int
}

func (f *flakyTransport) RoundTrip(*http.Request) (*http.Response, error) {
	f.calls++
	if f.calls <= f.n {
		return nil, f.err
	}
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody}, nil
}

func TestRetryTransport(t *testing.T) {
	closed := &net.OpError{Op: "write", Net: "tcp", Err: fmt.Errorf("wrapped: %w", net.ErrClosed)}
	for _, tc := range []struct {
		name      string
		method    string
		body      string
		fails     int
		err       error
		wantCalls int
		wantErr   bool
	}{
		{"GET on a closed connection is retried once", http.MethodGet, "", 1, closed, 2, false},
		{"and only once", http.MethodGet, "", 2, closed, 2, true},
		{"POST is not retried", http.MethodPost, "x", 1, closed, 1, true},
		{"GET with a body is not retried", http.MethodGet, "x", 1, closed, 1, true},
		{"other errors are not retried", http.MethodGet, "", 1, errors.New("tls: bad certificate"), 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &flakyTransport{n: tc.fails, err: tc.err}
			req, _ := http.NewRequestWithContext(context.Background(), tc.method, "https://apiserver/api", nil)
			if tc.body != "" {
				req, _ = http.NewRequestWithContext(context.Background(), tc.method, "https://apiserver/api", strings.NewReader(tc.body))
			}
			_, err := retryTransport{f}.RoundTrip(req)
			if f.calls != tc.wantCalls || (err != nil) != tc.wantErr {
				t.Errorf("calls %d, err %v; want %d calls, error %t", f.calls, err, tc.wantCalls, tc.wantErr)
			}
		})
	}
}
