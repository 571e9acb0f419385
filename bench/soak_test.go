package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubegate/kubegate/internal/stack"
	"github.com/kubegate/kubegate/internal/testenv"
)

// soakEnv names the soak's duration (a Go duration, e.g. 10m). Unset, the
// soak is skipped: it is `make soak`'s, not `make test`'s.
const soakEnv = "KUBEGATE_SOAK"

// The soak's mix: concurrent workers of each kind, each looping until the
// load ends.
const (
	soakGetters     = 6 // GETs and lists of pods and configmaps
	soakWatchers    = 3 // watches of configmaps, re-opened every soakWatchFor
	soakWriters     = 1 // configmap patches the watches see
	soakExecs       = 2 // exec sessions, WebSocket and SPDY in turn
	soakForwards    = 2 // port-forwards (one connection each), tunnel and SPDY in turn
	soakWatchFor    = 20 * time.Second
	soakForwardSize = 256 << 10
)

// Bounds on what may remain once the load has stopped and kubegate has
// settled (every session closed): goroutines and open file descriptors
// back within a few of their idle level, and the live heap (after a
// garbage collection) within soakHeapSlack of it. The resident set is
// reported, not bounded: Go returns freed memory to the system lazily,
// so RSS keeps the load's high-water mark for minutes; a leak shows in
// the live heap.
const (
	soakGoroutineSlack = 5
	soakFDSlack        = 5
	soakHeapSlack      = 16 << 20
	soakSettle         = 2 * time.Minute // how long settling may take at most
)

// soakCounts are the soak's figures.
type soakCounts struct {
	requests, watchEvents, watches, execs, forwards, errors atomic.Int64

	mu        sync.Mutex
	firstErrs []string
}

func (c *soakCounts) fail(kind string, err error) {
	c.errors.Add(1)
	c.mu.Lock()
	if len(c.firstErrs) < 10 {
		c.firstErrs = append(c.firstErrs, kind+": "+err.Error())
	}
	c.mu.Unlock()
}

// soakSample is kubegate's process at one moment.
type soakSample struct {
	rss        int64
	heap       int64 // live heap right after a garbage collection
	goroutines int
	fds        int
}

func (s soakSample) String() string {
	return fmt.Sprintf("RSS %s, live heap %s, %d goroutines, %d open fds", mib(s.rss), mib(s.heap), s.goroutines, s.fds)
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// TestSoak runs mixed load against kubegate (a child process with OIDC,
// policy, audit and session recording on) in front of the real apiserver
// for $KUBEGATE_SOAK: API GETs and lists, watches, exec sessions and
// port-forwards over both protocols client-go speaks. It fails on any
// error, on a session still open after the load, and on goroutines, file
// descriptors or live heap not back within the bounds above once the load
// has stopped (it waits up to soakSettle for them). It logs the figures:
// requests, sessions, errors, and kubegate's RSS, live heap, goroutines
// and open fds at the start and the end. Run it with `make soak SOAK=10m`.
func TestSoak(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv(soakEnv))
	if err != nil || d <= 0 {
		t.Skipf("set %s to a duration to run the soak", soakEnv)
	}
	env := testenv.Get(t)
	ctx := context.Background()
	dir := filepath.Join(env.Dir, "kubegate-soak")
	bin, err := buildKubegate(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := stack.Start(ctx, env, stack.Options{Dir: dir, Policy: benchPolicy, Binary: bin, Pprof: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Stop() }()
	pids, err := childrenOf(os.Getpid(), bin, st.ConfigPath)
	if err != nil || len(pids) != 1 {
		t.Fatalf("kubegate's process: %v %v", pids, err)
	}
	pid := pids[0]
	cfg, err := clientcmd.BuildConfigFromFlags("", st.Kubeconfigs["agent"])
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = -1, 0
	backend, err := startBulkServer(soakForwardSize)
	if err != nil {
		t.Fatal(err)
	}
	defer backend.srv.Close()

	sample := func() soakSample {
		t.Helper()
		s, err := soakSampleOf(pid, st.AdminURL)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	start := sample()
	t.Logf("start: %s", start)

	var c soakCounts
	loadCtx, stop := context.WithTimeout(ctx, d)
	defer stop()
	var wg sync.WaitGroup
	soakLoad(loadCtx, &wg, &c, cfg, backend.port)
	var warm soakSample
	select {
	case <-time.After(d / 4):
		warm = sample()
		t.Logf("a quarter in: %s", warm)
	case <-loadCtx.Done():
	}
	<-loadCtx.Done()
	wg.Wait()
	loaded := sample()
	t.Logf("load stopped: %s", loaded)

	// Settle: wait until no session is open and goroutines and fds are
	// back within their slack of the start.
	var end soakSample
	deadline := time.Now().Add(soakSettle)
	every := time.NewTicker(time.Second)
	defer every.Stop()
	gate := &compared{gate: st}
	for {
		end = sample()
		live, err := gate.kubegateSessions()
		if err != nil {
			t.Fatal(err)
		}
		if live == 0 && end.goroutines <= start.goroutines+soakGoroutineSlack && end.fds <= start.fds+soakFDSlack &&
			end.heap <= start.heap+soakHeapSlack {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("after %s: %d sessions open, %s; started with %s", soakSettle, live, end, start)
			break
		}
		<-every.C
	}
	t.Logf("settled: %s", end)
	t.Logf("soak %s: %d API requests, %d watches (%d events), %d exec sessions, %d port-forwards, %d errors",
		d, c.requests.Load(), c.watches.Load(), c.watchEvents.Load(), c.execs.Load(), c.forwards.Load(), c.errors.Load())
	t.Logf("kubegate: RSS %s → %s (%s a quarter in, %s as the load stopped), live heap %s → %s, goroutines %d → %d, open fds %d → %d",
		mib(start.rss), mib(end.rss), mib(warm.rss), mib(loaded.rss), mib(start.heap), mib(end.heap),
		start.goroutines, end.goroutines, start.fds, end.fds)
	if n := c.errors.Load(); n > 0 {
		t.Errorf("%d errors; the first: %s", n, strings.Join(c.firstErrs, "; "))
	}
	if c.requests.Load() == 0 || c.watchEvents.Load() == 0 || c.execs.Load() == 0 || c.forwards.Load() == 0 {
		t.Error("a kind of load did not run")
	}
}

// soakLoad starts the workers; each stops when ctx ends.
func soakLoad(ctx context.Context, wg *sync.WaitGroup, c *soakCounts, cfg *rest.Config, backendPort int) {
	cs := kubernetes.NewForConfigOrDie(cfg)
	for i := range soakGetters {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				var err error
				switch (i + n) % 4 {
				case 0:
					_, err = cs.CoreV1().Pods("dev").Get(ctx, "toolbox", metav1.GetOptions{})
				case 1:
					_, err = cs.CoreV1().Pods("dev").List(ctx, metav1.ListOptions{})
				case 2:
					_, err = cs.CoreV1().ConfigMaps("dev").List(ctx, metav1.ListOptions{})
				case 3:
					_, err = cs.Discovery().ServerVersion()
				}
				if ctx.Err() != nil {
					return
				}
				c.requests.Add(1)
				if err != nil {
					c.fail("get", err)
				}
			}
		})
	}
	name := "soak-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if _, err := cs.CoreV1().ConfigMaps("dev").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		c.fail("create configmap", err)
	}
	for range soakWriters {
		wg.Go(func() {
			defer func() { _ = cs.CoreV1().ConfigMaps("dev").Delete(context.Background(), name, metav1.DeleteOptions{}) }()
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for n := 0; ; n++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				patch := fmt.Appendf(nil, `{"data":{"n":"%d"}}`, n)
				_, err := cs.CoreV1().ConfigMaps("dev").Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
				if ctx.Err() != nil {
					return
				}
				c.requests.Add(1)
				if err != nil {
					c.fail("patch", err)
				}
			}
		})
	}
	for range soakWatchers {
		wg.Go(func() {
			for ctx.Err() == nil {
				wctx, cancel := context.WithTimeout(ctx, soakWatchFor)
				w, err := cs.CoreV1().ConfigMaps("dev").Watch(wctx, metav1.ListOptions{})
				if err != nil {
					cancel()
					if ctx.Err() == nil {
						c.fail("watch", err)
					}
					continue
				}
				c.watches.Add(1)
				for ev := range w.ResultChan() {
					if ev.Type == watch.Error {
						c.fail("watch", fmt.Errorf("error event: %v", ev.Object))
						continue
					}
					c.watchEvents.Add(1)
				}
				w.Stop()
				cancel()
			}
		})
	}
	for i := range soakExecs {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				websocket := (i+n)%2 == 0
				var out bytes.Buffer
				err := execOnce(cfg, websocket, &out, "echo", "soak")
				if err == nil && out.String() != "soak\n" {
					err = fmt.Errorf("stdout %q", out.String())
				}
				c.execs.Add(1)
				if err != nil {
					c.fail(fmt.Sprintf("exec (websocket %t)", websocket), err)
				}
			}
		})
	}
	for i := range soakForwards {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				websocket := (i+n)%2 == 0
				_, err := forwardOnce(cfg, websocket, backendPort, soakForwardSize)
				c.forwards.Add(1)
				if err != nil {
					c.fail(fmt.Sprintf("port-forward (websocket %t)", websocket), err)
				}
			}
		})
	}
}

// soakSampleOf reads kubegate's resident set and open descriptors from
// /proc, and its goroutines and live heap from its admin listener (a heap
// profile with gc=1 collects garbage first).
func soakSampleOf(pid int, adminURL string) (soakSample, error) {
	resp, err := http.Get(adminURL + "/debug/pprof/heap?gc=1")
	if err != nil {
		return soakSample{}, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return soakSample{}, fmt.Errorf("heap profile: %s", resp.Status)
	}
	heap, err := soakMetric(adminURL, "go_memstats_heap_alloc_bytes")
	if err != nil {
		return soakSample{}, err
	}
	st, err := readStat(pid)
	if err != nil {
		return soakSample{}, err
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return soakSample{}, err
	}
	g, err := soakMetric(adminURL, "go_goroutines")
	if err != nil {
		return soakSample{}, err
	}
	return soakSample{rss: st.rss, heap: int64(heap), goroutines: int(g), fds: len(fds)}, nil
}

// soakMetric reads one unlabelled gauge from kubegate's admin /metrics.
func soakMetric(adminURL, name string) (float64, error) {
	resp, err := http.Get(adminURL + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s/metrics has no %s", adminURL, name)
}
