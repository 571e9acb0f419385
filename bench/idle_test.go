package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
)

// idleSetupConcurrency is how many attach sessions are being set up at once.
const idleSetupConcurrency = 32

// attachURL attaches to dev/toolbox's echo loop with stdin and stdout.
func attachURL(cfg *rest.Config) string {
	u, _ := url.Parse(cfg.Host)
	u.Path = "/api/v1/namespaces/dev/pods/toolbox/attach"
	u.RawQuery = url.Values{"container": {"main"}, "stdin": {"true"}, "stdout": {"true"}}.Encode()
	return u.String()
}

// attachSession is one attach session over WebSocket whose stdin stays
// open and silent until close.
type attachSession struct {
	stdin  *io.PipeWriter
	cancel context.CancelFunc
	seen   chan struct{} // closed when the first output arrives
	once   sync.Once
	last   *atomic.Int64 // when output last arrived (Unix ns), shared
	done   chan error    // the session's end
}

func (s *attachSession) Write(p []byte) (int, error) {
	s.once.Do(func() { close(s.seen) })
	if s.last != nil {
		s.last.Store(time.Now().UnixNano())
	}
	return len(p), nil
}

// openAttach opens an attach session; last, if not nil, notes when
// output arrives.
func openAttach(cfg *rest.Config, last *atomic.Int64) (*attachSession, error) {
	exec, err := remotecommand.NewWebSocketExecutor(cfg, http.MethodGet, attachURL(cfg))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	s := &attachSession{stdin: pw, cancel: cancel, seen: make(chan struct{}), last: last, done: make(chan error, 1)}
	go func() { s.done <- exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: pr, Stdout: s}) }()
	return s, nil
}

// close ends the session: stdin's end tells the kubelet, the cancel closes
// the connection; it waits until the session has returned.
func (s *attachSession) close() {
	s.stdin.Close()
	s.cancel()
	<-s.done
}

// pinger attaches to the toolbox directly and writes a line every quarter
// second: the echo loop answers on every attached session, which is how a
// new session shows it is attached end to end.
func startPinger(cfg *rest.Config) (stop func(), err error) {
	s, err := openAttach(cfg, nil)
	if err != nil {
		return nil, err
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			if _, err := s.stdin.Write([]byte("ping\n")); err != nil {
				return
			}
			select {
			case <-quit:
				return
			case <-tick.C:
			}
		}
	})
	// Closing the session first unblocks a write its end left waiting.
	return func() { close(quit); s.close(); wg.Wait() }, nil
}

// openIdle opens n attach sessions through cfg, idleSetupConcurrency at a
// time, each counted once its first output (a ping's echo) arrived; last
// notes when any of them last received output.
func openIdle(cfg *rest.Config, n int, last *atomic.Int64) ([]*attachSession, error) {
	sessions := make([]*attachSession, n)
	var next atomic.Int64
	errs := make(chan error, idleSetupConcurrency)
	var wg sync.WaitGroup
	for range idleSetupConcurrency {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				s, err := openAttach(cfg, last)
				if err != nil {
					errs <- err
					return
				}
				sessions[i] = s
				select {
				case <-s.seen:
				case err := <-s.done:
					s.done <- err
					errs <- fmt.Errorf("attach session %d ended before it was attached: %w", i, errors.Join(err, io.ErrUnexpectedEOF))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return sessions, <-errs
}

// kubegateSessions counts kubegate's live sessions (its admin /sessions).
func (c *compared) kubegateSessions() (int, error) {
	resp, err := http.Get(c.gate.AdminURL + "/sessions")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var list []json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return 0, err
	}
	return len(list), nil
}

// waitNoSessions waits until kubegate lists no live session.
func (c *compared) waitNoSessions() error {
	for {
		live, err := c.kubegateSessions()
		if err != nil || live == 0 {
			return err
		}
		<-poll.C
	}
}

// idleQuiet is how long no output may have arrived on any session before
// the sessions count as idle.
const idleQuiet = 500 * time.Millisecond

// BenchmarkIdleStreams opens -idle-sessions concurrent attach sessions
// (WebSocket, stdin open and silent) through nginx and through kubegate,
// in turn, -idle-rounds times, and reports the growth of each proxy's
// resident memory (RSS, all its processes) per open session, measured once
// every session is attached end to end and no output has arrived for
// idleQuiet. kubegate records every session. Run with -benchtime=1x.
func BenchmarkIdleStreams(b *testing.B) {
	c := comparison(b)
	n := *idleSessions
	proxies := []target{c.nginx, c.kubegate}
	samples := interleave(b, proxies, b.N**idleRounds, func(t target) (float64, error) {
		// Sessions end asynchronously at kubegate; each round starts
		// from none.
		if err := c.waitNoSessions(); err != nil {
			return 0, err
		}
		pids, err := t.pids()
		if err != nil {
			return 0, err
		}
		before, err := sumStat(pids)
		if err != nil {
			return 0, err
		}
		stopPing, err := startPinger(c.direct.cfg)
		if err != nil {
			return 0, err
		}
		var last atomic.Int64
		sessions, err := openIdle(ownConnection(t.cfg), n, &last)
		stopPing()
		defer func() {
			for _, s := range sessions {
				if s != nil {
					s.close()
				}
			}
		}()
		if err != nil {
			return 0, err
		}
		if t.name == "kubegate" {
			if live, err := c.kubegateSessions(); err != nil || live != n {
				return 0, fmt.Errorf("kubegate lists %d live sessions, want %d: %v", live, n, err)
			}
		}
		for time.Since(time.Unix(0, last.Load())) < idleQuiet {
			<-poll.C
		}
		after, err := sumStat(pids)
		if err != nil {
			return 0, err
		}
		return float64(after.rss-before.rss) / 1024 / float64(n), nil
	})
	reportMedians(b, proxies, samples, "KiB/session")
	b.ReportMetric(float64(n), "sessions")
	if err := c.waitNoSessions(); err != nil {
		b.Fatal(err)
	}
}
