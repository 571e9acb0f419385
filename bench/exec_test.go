package bench

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kubegate/kubegate/internal/stack"
	"github.com/kubegate/kubegate/internal/testenv"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/remotecommand"
)

// benchTargets starts kubegate (once per benchmark binary) and returns the
// rest.Configs to reach the cluster directly and through kubegate.
func benchTargets(b *testing.B) (direct, gateway *rest.Config) {
	b.Helper()
	targetsOnce.Do(func() {
		env := testenv.Get(b)
		st, err := stack.Start(context.Background(), env, stack.Options{Dir: filepath.Join(env.Dir, "kubegate-bench-exec"), Policy: benchPolicy, Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			targetsErr = err
			return
		}
		targetsDirect = env.RESTConfig
		targetsGateway, targetsErr = clientcmd.BuildConfigFromFlags("", st.Kubeconfigs["agent"])
	})
	if targetsErr != nil {
		b.Fatal(targetsErr)
	}
	return targetsDirect, targetsGateway
}

var (
	targetsOnce                   sync.Once
	targetsDirect, targetsGateway *rest.Config
	targetsErr                    error
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

// BenchmarkExecSetupRate runs `exec -- true` sessions at concurrency 8,
// direct and through kubegate, interleaved, over WebSocket and SPDY, and
// reports sessions per second and the ratio to direct.
func BenchmarkExecSetupRate(b *testing.B) {
	direct, gateway := benchTargets(b)
	const concurrency, sessions = 8, 160
	for _, ws := range []bool{true, false} {
		name := map[bool]string{true: "websocket", false: "spdy"}[ws]
		b.Run(name, func(b *testing.B) {
			rate := func(cfg *rest.Config) float64 {
				start := time.Now()
				var wg sync.WaitGroup
				work := make(chan struct{}, sessions)
				for range sessions {
					work <- struct{}{}
				}
				close(work)
				for range concurrency {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for range work {
							if err := execOnce(cfg, ws, io.Discard, "true"); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				return sessions / time.Since(start).Seconds()
			}
			var d, g float64
			for range b.N {
				d += rate(direct)
				g += rate(gateway)
			}
			d, g = d/float64(b.N), g/float64(b.N)
			b.ReportMetric(d, "direct-sessions/s")
			b.ReportMetric(g, "kubegate-sessions/s")
			b.ReportMetric(g/d, "ratio")
		})
	}
}

// BenchmarkExecThroughput streams 256 MiB of text stdout (`yes`) from one
// exec session, direct and through kubegate (recorded), and reports MiB/s
// and the ratio.
func BenchmarkExecThroughput(b *testing.B) {
	direct, gateway := benchTargets(b)
	const size = 256 << 20
	throughput := func(cfg *rest.Config) float64 {
		start := time.Now()
		n := &countingWriter{}
		if err := execOnce(cfg, true, n, "sh", "-c", "yes | head -c 268435456"); err != nil {
			b.Fatal(err)
		}
		if n.n != size {
			b.Fatalf("received %d bytes, want %d", n.n, size)
		}
		return float64(size) / (1 << 20) / time.Since(start).Seconds()
	}
	var d, g float64
	for range b.N {
		d += throughput(direct)
		g += throughput(gateway)
	}
	d, g = d/float64(b.N), g/float64(b.N)
	b.ReportMetric(d, "direct-MiB/s")
	b.ReportMetric(g, "kubegate-MiB/s")
	b.ReportMetric(g/d, "ratio")
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }
