package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// getRound is one target's share of a GET throughput round.
type getRound struct {
	rate float64 // requests per second
	// proxyCPU and apiserverCPU are the user+system time the proxy (nginx
	// or kubegate; zero for direct) and the apiserver spent, per 1,000
	// requests.
	proxyCPU, apiserverCPU time.Duration
}

// BenchmarkGetThroughput has -get-clients concurrent clients, each with
// its own keepalive connection, GET one pod -get-requests times in all per
// round, direct, through nginx and through kubegate, interleaved in
// -rounds. It reports the median requests per second, and the CPU time
// (user+system, from /proc/PID/stat) that nginx, kubegate and the apiserver
// spent per 1,000 requests. Run with -benchtime=1x; b.N multiplies the
// rounds.
func BenchmarkGetThroughput(b *testing.B) {
	c := comparison(b)
	ctx := context.Background()
	clients := map[string][]kubernetes.Interface{}
	for _, t := range c.all() {
		for range *getClients {
			clients[t.name] = append(clients[t.name], clientset(b, ownConnection(t.cfg)))
		}
	}
	// run has every client GET until n requests are done.
	run := func(t target, n int) error {
		var left atomic.Int64
		left.Store(int64(n))
		errs := make(chan error, len(clients[t.name]))
		var wg sync.WaitGroup
		for _, cs := range clients[t.name] {
			wg.Go(func() {
				for left.Add(-1) >= 0 {
					if _, err := cs.CoreV1().Pods("dev").Get(ctx, "toolbox", metav1.GetOptions{}); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		return <-errs
	}
	cpu := func(t target) (proxy, apiserver time.Duration, err error) {
		api, err := readStat(c.apiserver)
		if err != nil || t.pids == nil {
			return 0, api.cpu, err
		}
		pids, err := t.pids()
		if err != nil {
			return 0, 0, err
		}
		p, err := sumStat(pids)
		return p.cpu, api.cpu, err
	}
	// Warm every client's connection (and kubegate's token cache).
	interleave(b, c.all(), 1, func(t target) (struct{}, error) { return struct{}{}, run(t, 4**getClients) })
	b.ResetTimer()
	samples := interleave(b, c.all(), b.N**rounds, func(t target) (getRound, error) {
		proxy0, api0, err := cpu(t)
		if err != nil {
			return getRound{}, err
		}
		start := time.Now()
		if err := run(t, *getRequests); err != nil {
			return getRound{}, err
		}
		elapsed := time.Since(start)
		proxy1, api1, err := cpu(t)
		if err != nil {
			return getRound{}, err
		}
		per1k := func(d time.Duration) time.Duration { return d * 1000 / time.Duration(*getRequests) }
		return getRound{
			rate:         float64(*getRequests) / elapsed.Seconds(),
			proxyCPU:     per1k(proxy1 - proxy0),
			apiserverCPU: per1k(api1 - api0),
		}, nil
	})
	b.StopTimer()
	reportMedians(b, c.all(), column(samples, func(r getRound) float64 { return r.rate }), "req/s")
	proxies := []target{c.nginx, c.kubegate}
	reportMedians(b, proxies, column(samples[1:], func(r getRound) float64 { return ms(r.proxyCPU) }), "cpu-ms/1k")
	reportMedians(b, c.all(), column(samples, func(r getRound) float64 { return ms(r.apiserverCPU) }), "apiserver-cpu-ms/1k")
}
