package bench

import (
	"context"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// benchPolicy is a realistic policy: discovery, a deny that does not match,
// the built-in privileged check, and an allow with an audit level of Request.
const benchPolicy = `
# The figures compare kubegate with nginx, which has no per-user limits,
# under one user's load: kubegate's rate and stream limits are off.
limits:
  requestsPerSecond: -1
  maxStreams: -1
policy:
  defaultRules: true
  rules:
  - name: discovery
    nonResourceURLs: ["/api", "/api/*", "/apis", "/apis/*", "/version", "/openapi/*"]
    verbs: ["get"]
    action: allow
  - name: no-deletes-in-prod
    namespaces: ["prod"]
    verbs: ["delete"]
    action: deny
    message: no
  - name: agents
    groups: ["dex:agents"]
    action: allow
    auditLevel: Request
`

// BenchmarkGetLatency measures -get-sequential sequential GETs of one pod
// per round, direct to the apiserver, through nginx and through kubegate
// (OIDC on, policy on, audit on), interleaved in -rounds so all see the same
// machine. It reports the medians over the rounds of each round's p50 and
// p99. Run with -benchtime=1x; b.N multiplies the rounds.
func BenchmarkGetLatency(b *testing.B) {
	c := comparison(b)
	ctx := context.Background()
	clients := map[string]kubernetes.Interface{}
	for _, t := range c.all() {
		clients[t.name] = clientset(b, t.cfg)
	}
	get := func(t target, n int) ([]time.Duration, error) {
		ds := make([]time.Duration, 0, n)
		for range n {
			start := time.Now()
			if _, err := clients[t.name].CoreV1().Pods("dev").Get(ctx, "toolbox", metav1.GetOptions{}); err != nil {
				return nil, err
			}
			ds = append(ds, time.Since(start))
		}
		return ds, nil
	}
	type percentiles struct{ p50, p99 time.Duration }
	// Warm every path: connections, token cache, discovery.
	interleave(b, c.all(), 1, func(t target) (percentiles, error) { _, err := get(t, 20); return percentiles{}, err })
	b.ResetTimer()
	samples := interleave(b, c.all(), b.N**rounds, func(t target) (percentiles, error) {
		ds, err := get(t, *getSequential)
		if err != nil {
			return percentiles{}, err
		}
		return percentiles{percentile(ds, 50), percentile(ds, 99)}, nil
	})
	b.StopTimer()
	reportMedians(b, c.all(), column(samples, func(p percentiles) float64 { return us(p.p50) }), "p50-µs")
	reportMedians(b, c.all(), column(samples, func(p percentiles) float64 { return us(p.p99) }), "p99-µs")
}

func clientset(b *testing.B, cfg *rest.Config) kubernetes.Interface {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = -1, 0 // no client-side rate limit: measure the servers
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return cs
}

func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		panic("percentile of no samples")
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
