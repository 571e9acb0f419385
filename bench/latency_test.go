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

// BenchmarkGetLatency measures sequential GETs of one pod, direct to the
// apiserver and through kubegate (OIDC on, policy on, audit on), interleaved
// in rounds so both see the same machine. It reports medians and p99s and
// the latency kubegate adds. Run with -benchtime=1x; b.N repeats the rounds.
func BenchmarkGetLatency(b *testing.B) {
	ctx := context.Background()
	directCfg, gwCfg := benchTargets(b)
	direct := clientset(b, directCfg)
	gateway := clientset(b, gwCfg)

	const rounds, perRound = 10, 200
	var d, g []time.Duration
	get := func(cs kubernetes.Interface, into *[]time.Duration) {
		for range perRound {
			start := time.Now()
			if _, err := cs.CoreV1().Pods("dev").Get(ctx, "toolbox", metav1.GetOptions{}); err != nil {
				b.Fatal(err)
			}
			*into = append(*into, time.Since(start))
		}
	}
	// Warm both paths: connections, token cache, discovery.
	get(direct, new([]time.Duration))
	get(gateway, new([]time.Duration))
	b.ResetTimer()
	for range b.N {
		for range rounds {
			get(direct, &d)
			get(gateway, &g)
		}
	}
	b.StopTimer()
	dp50, dp99 := percentile(d, 50), percentile(d, 99)
	gp50, gp99 := percentile(g, 50), percentile(g, 99)
	b.ReportMetric(us(dp50), "direct-p50-µs")
	b.ReportMetric(us(dp99), "direct-p99-µs")
	b.ReportMetric(us(gp50), "kubegate-p50-µs")
	b.ReportMetric(us(gp99), "kubegate-p99-µs")
	b.ReportMetric(us(gp50-dp50), "added-p50-µs")
	b.ReportMetric(float64(gp50)/float64(dp50), "p50-ratio")
	b.Logf("GET pod, %d sequential requests each: direct p50 %s p99 %s; kubegate p50 %s p99 %s; added p50 %s p99 %s",
		len(d), dp50, dp99, gp50, gp99, gp50-dp50, gp99-dp99)
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
