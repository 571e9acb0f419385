package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/kubegate/kubegate/internal/stack"
	"github.com/kubegate/kubegate/internal/testenv"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// target is one way to reach the cluster.
type target struct {
	// name is "direct", "nginx" or "kubegate"; figures are reported as
	// "NAME-UNIT".
	name string
	// cfg reaches the cluster: as the admin (direct), with no credential
	// (nginx holds the admin's), or as the agent with an OIDC token
	// (kubegate).
	cfg *rest.Config
	// pids lists the proxy's processes, whose CPU and memory the figures
	// count. Nil for direct.
	pids func() ([]int, error)
	// optional is set for nginx: a figure it cannot carry (an upgrade it
	// does not pass) leaves it out instead of failing.
	optional bool
}

// compared is the same cluster reached directly, through nginx and through
// kubegate (a child process, OIDC on, policy on, audit on, recording on).
type compared struct {
	direct, nginx, kubegate target
	// apiserver is the kube-apiserver's pid.
	apiserver int
	gate      *stack.Stack
	proxy     *nginxProxy
}

// all is every target, the baseline first.
func (c *compared) all() []target { return []target{c.direct, c.nginx, c.kubegate} }

var (
	comparedOnce sync.Once
	comparedSet  *compared
	comparedErr  error
)

// comparison starts nginx and kubegate in front of the shared cluster, once
// per benchmark binary; stopComparison ends them.
func comparison(b *testing.B) *compared {
	b.Helper()
	comparedOnce.Do(func() { comparedSet, comparedErr = startComparison(testenv.Get(b)) })
	if comparedErr != nil {
		b.Fatal(comparedErr)
	}
	return comparedSet
}

func startComparison(env *testenv.Env) (*compared, error) {
	ctx := context.Background()
	c := &compared{apiserver: env.Processes()["kube-apiserver"]}
	c.direct = target{name: "direct", cfg: env.RESTConfig}

	proxy, err := startNginx(ctx, env, filepath.Join(env.Dir, "nginx-bench"))
	if err != nil {
		return nil, err
	}
	c.proxy = proxy
	c.nginx = target{name: "nginx", cfg: proxy.Config, pids: proxy.pids, optional: true}

	dir := filepath.Join(env.Dir, "kubegate-bench")
	bin, err := buildKubegate(dir)
	if err != nil {
		proxy.stop()
		return nil, err
	}
	st, err := stack.Start(ctx, env, stack.Options{Dir: dir, Policy: benchPolicy, Binary: bin, Pprof: *pprofOn})
	if err != nil {
		proxy.stop()
		return nil, err
	}
	c.gate = st
	if *pprofOn {
		fmt.Fprintf(os.Stderr, "kubegate profiles: %s/debug/pprof/\n", st.AdminURL)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", st.Kubeconfigs["agent"])
	if err != nil {
		return nil, err
	}
	c.kubegate = target{name: "kubegate", cfg: cfg, pids: func() ([]int, error) {
		pids, err := childrenOf(os.Getpid(), bin, st.ConfigPath)
		if err == nil && len(pids) != 1 {
			err = fmt.Errorf("%d kubegate processes run with %s", len(pids), st.ConfigPath)
		}
		return pids, err
	}}
	return c, nil
}

// stopComparison stops nginx and kubegate, if they were started.
func stopComparison() {
	if comparedSet == nil {
		return
	}
	comparedSet.proxy.stop()
	_ = comparedSet.gate.Stop()
}

// buildKubegate builds the kubegate binary into dir.
func buildKubegate(dir string) (string, error) {
	bin := filepath.Join(dir, "kubegate")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/kubegate").CombinedOutput(); err != nil {
		return "", fmt.Errorf("building kubegate: %w\n%s", err, out)
	}
	return bin, nil
}

// ownConnection returns a copy of cfg whose clients open their own
// connections: client-go shares one transport between equal configs, and a
// config with its own dialer is never shared.
func ownConnection(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = -1, 0 // no client-side rate limit: measure the servers
	c.Dial = (&net.Dialer{}).DialContext
	return c
}

// interleave measures every target n times, in rounds: each round measures
// each target once, the first one rotating so that none always runs right
// after another. It returns each target's samples, in the order of ts. An
// optional target that fails is logged and left out of later rounds (its
// samples are nil); any other failure ends the benchmark.
func interleave[R any](b *testing.B, ts []target, n int, measure func(target) (R, error)) [][]R {
	b.Helper()
	samples := make([][]R, len(ts))
	failed := make([]bool, len(ts))
	for round := range n {
		for k := range ts {
			i := (round + k) % len(ts)
			if failed[i] {
				continue
			}
			v, err := measure(ts[i])
			switch {
			case err != nil && ts[i].optional:
				b.Logf("%s left out: %v", ts[i].name, err)
				failed[i], samples[i] = true, nil
			case err != nil:
				b.Fatalf("%s: %v", ts[i].name, err)
			default:
				samples[i] = append(samples[i], v)
			}
		}
	}
	return samples
}

// column picks one figure out of each sample.
func column[R any](samples [][]R, f func(R) float64) [][]float64 {
	out := make([][]float64, len(samples))
	for i, s := range samples {
		for _, r := range s {
			out[i] = append(out[i], f(r))
		}
	}
	return out
}

// reportMedians reports each target's median as "NAME-UNIT" and, when
// both are there, kubegate's median over direct's and over nginx's as
// "kubegate/BASE-UNIT".
func reportMedians(b *testing.B, ts []target, samples [][]float64, unit string) {
	b.Helper()
	med := map[string]float64{}
	for i, t := range ts {
		if len(samples[i]) == 0 {
			continue
		}
		med[t.name] = median(samples[i])
		b.ReportMetric(med[t.name], t.name+"-"+unit)
	}
	for _, base := range []string{"direct", "nginx"} {
		if k, ok := med["kubegate"]; ok && med[base] != 0 {
			b.ReportMetric(k/med[base], "kubegate/"+base+"-"+unit)
		}
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
