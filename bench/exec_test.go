package bench

import (
	"context"
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

func execURL(cfg *rest.Config, command ...string) *url.URL {
	u, _ := url.Parse(cfg.Host)
	u.Path = "/api/v1/namespaces/dev/pods/toolbox/exec"
	q := url.Values{"container": {"main"}, "stdout": {"true"}}
	for _, c := range command {
		q.Add("command", c)
	}
	u.RawQuery = q.Encode()
	return u
}

// execOnce runs one exec session with client-go's WebSocket or SPDY
// executor, writing its stdout to out.
func execOnce(cfg *rest.Config, websocket bool, out io.Writer, command ...string) error {
	u := execURL(cfg, command...)
	var exec remotecommand.Executor
	var err error
	if websocket {
		exec, err = remotecommand.NewWebSocketExecutor(cfg, http.MethodGet, u.String())
	} else {
		exec, err = remotecommand.NewSPDYExecutor(cfg, http.MethodPost, u)
	}
	if err != nil {
		return err
	}
	return exec.StreamWithContext(context.Background(), remotecommand.StreamOptions{Stdout: out})
}

// protocols are the stream protocols client-go speaks, by name.
var protocols = []struct {
	name      string
	websocket bool
}{{"websocket", true}, {"spdy", false}}

// BenchmarkExecSetupRate runs `exec -- true` sessions at -exec-concurrency,
// direct, through nginx and through kubegate, interleaved in -rounds, over
// WebSocket and SPDY, and reports the median sessions per second of each.
// Run with -benchtime=1x; b.N multiplies the rounds.
func BenchmarkExecSetupRate(b *testing.B) {
	c := comparison(b)
	for _, p := range protocols {
		b.Run(p.name, func(b *testing.B) {
			rate := func(t target) (float64, error) {
				var left atomic.Int64
				left.Store(int64(*execSessions))
				var wg sync.WaitGroup
				errs := make(chan error, *execConcurrency)
				start := time.Now()
				for range *execConcurrency {
					wg.Go(func() {
						for left.Add(-1) >= 0 {
							if err := execOnce(t.cfg, p.websocket, io.Discard, "true"); err != nil {
								errs <- err
								return
							}
						}
					})
				}
				wg.Wait()
				elapsed := time.Since(start)
				close(errs)
				if err := <-errs; err != nil {
					return 0, err
				}
				return float64(*execSessions) / elapsed.Seconds(), nil
			}
			samples := interleave(b, c.all(), b.N**rounds, rate)
			reportMedians(b, c.all(), samples, "sessions/s")
		})
	}
}

// BenchmarkExecThroughput streams -stream-mib MiB of text stdout (`yes`)
// from one exec session over WebSocket, direct, through nginx and through
// kubegate (recorded, and its output masked), interleaved in -rounds, and
// reports the median MiB/s of each, and the proxies' median CPU time per
// MiB (user+system, from /proc): the figure that holds on a shared machine,
// where the client, the apiserver and the kubelet compete for the same
// cores.
func BenchmarkExecThroughput(b *testing.B) {
	c := comparison(b)
	size := int64(*streamMiB) << 20
	type round struct {
		rate float64
		cpu  time.Duration // the proxy's, for the whole stream
	}
	proxyCPU := func(t target) (time.Duration, error) {
		if t.pids == nil {
			return 0, nil
		}
		pids, err := t.pids()
		if err != nil {
			return 0, err
		}
		s, err := sumStat(pids)
		return s.cpu, err
	}
	throughput := func(t target) (round, error) {
		cpu0, err := proxyCPU(t)
		if err != nil {
			return round{}, err
		}
		n := &countingWriter{}
		start := time.Now()
		if err := execOnce(t.cfg, true, n, "sh", "-c", fmt.Sprintf("yes | head -c %d", size)); err != nil {
			return round{}, err
		}
		elapsed := time.Since(start)
		if n.n != size {
			return round{}, fmt.Errorf("received %d bytes, want %d", n.n, size)
		}
		cpu1, err := proxyCPU(t)
		if err != nil {
			return round{}, err
		}
		return round{rate: float64(size) / (1 << 20) / elapsed.Seconds(), cpu: cpu1 - cpu0}, nil
	}
	samples := interleave(b, c.all(), b.N**rounds, throughput)
	reportMedians(b, c.all(), column(samples, func(r round) float64 { return r.rate }), "MiB/s")
	perMiB := func(r round) float64 { return ms(r.cpu) / float64(*streamMiB) }
	reportMedians(b, []target{c.nginx, c.kubegate}, column(samples[1:], perMiB), "cpu-ms/MiB")
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }
