package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kubegate/kubegate/internal/stack"
	"github.com/kubegate/kubegate/internal/testenv"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	maskSecrets   = 5000
	maskNamespace = "bench-secrets"
)

// maskTargets are the same cluster reached three ways: directly, through
// kubegate with masking off, and through kubegate with the default masking.
type maskTargets struct {
	direct, unmasked, masked *rest.Config
}

var (
	maskOnce sync.Once
	maskSet  maskTargets
	maskErr  error
)

func maskBench(b *testing.B) maskTargets {
	b.Helper()
	maskOnce.Do(func() {
		env := testenv.Get(b)
		ctx := context.Background()
		if maskErr = env.CreateNamespace(ctx, maskNamespace); maskErr != nil {
			return
		}
		agents := rbacv1.Subject{Kind: "Group", APIGroup: "rbac.authorization.k8s.io", Name: "dex:agents"}
		if maskErr = env.Bind(ctx, maskNamespace, "edit", agents); maskErr != nil { // edit reads Secrets; view does not
			return
		}
		fast := rest.CopyConfig(env.RESTConfig)
		fast.QPS, fast.Burst = -1, 0 // no client-side throttling for the setup
		maskErr = createSecrets(ctx, kubernetes.NewForConfigOrDie(fast), maskSecrets)
		if maskErr != nil {
			return
		}
		start := func(name, extra string) *rest.Config {
			st, err := stack.Start(ctx, env, stack.Options{Dir: filepath.Join(env.Dir, name), Policy: benchPolicy + extra, Log: slog.New(slog.DiscardHandler)})
			if err != nil {
				maskErr = err
				return nil
			}
			cfg, err := clientcmd.BuildConfigFromFlags("", st.Kubeconfigs["agent"])
			if err != nil {
				maskErr = err
			}
			return cfg
		}
		maskSet = maskTargets{direct: env.RESTConfig, unmasked: start("kubegate-bench-unmasked", "masking: {disabled: true}\n"), masked: start("kubegate-bench-masked", "")}
	})
	if maskErr != nil {
		b.Fatal(maskErr)
	}
	return maskSet
}

// createSecrets creates n Secrets of about 1 KiB each, 16 at a time.
func createSecrets(ctx context.Context, cs kubernetes.Interface, n int) error {
	sem := make(chan struct{}, 16)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	value := make([]byte, 768)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_, err := cs.CoreV1().Secrets(maskNamespace).Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("s-%05d", i), Labels: map[string]string{"bench": "mask"}},
				Data:       map[string][]byte{"password": value, "user": []byte("app")},
			}, metav1.CreateOptions{})
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// listBytes lists the Secrets once as raw bytes in the given content type
// and returns how many bytes came back.
func listBytes(ctx context.Context, cfg *rest.Config, contentType string) (int64, error) {
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = -1, 0
	cs, err := kubernetes.NewForConfig(c)
	if err != nil {
		return 0, err
	}
	rc, err := cs.CoreV1().RESTClient().Get().Namespace(maskNamespace).Resource("secrets").SetHeader("Accept", contentType).Stream(ctx)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	return io.Copy(io.Discard, rc)
}

// BenchmarkMaskList lists 5,000 Secrets (about 5 MiB) directly, through
// kubegate without masking, and through kubegate masking them, in JSON and
// in protobuf, interleaved in rounds (BENCH_ROUNDS). It reports medians and the ratio of
// masked to unmasked throughput (target ≥ 0.5).
func BenchmarkMaskList(b *testing.B) {
	t := maskBench(b)
	ctx := context.Background()
	for _, ct := range []struct{ name, accept string }{{"json", runtime.ContentTypeJSON}, {"protobuf", runtime.ContentTypeProtobuf}} {
		b.Run(ct.name, func(b *testing.B) {
			targets := []struct {
				name string
				cfg  *rest.Config
			}{{"direct", t.direct}, {"unmasked", t.unmasked}, {"masked", t.masked}}
			times := make([][]time.Duration, len(targets))
			var size int64
			for range b.N {
				for range *rounds {
					for i, tg := range targets {
						start := time.Now()
						n, err := listBytes(ctx, tg.cfg, ct.accept)
						if err != nil {
							b.Fatalf("%s: %v", tg.name, err)
						}
						times[i] = append(times[i], time.Since(start))
						size = n
					}
				}
			}
			med := func(i int) time.Duration { slices.Sort(times[i]); return times[i][len(times[i])/2] }
			mibps := func(d time.Duration) float64 { return float64(size) / (1 << 20) / d.Seconds() }
			b.ReportMetric(mibps(med(0)), "direct-MiB/s")
			b.ReportMetric(mibps(med(1)), "unmasked-MiB/s")
			b.ReportMetric(mibps(med(2)), "masked-MiB/s")
			b.ReportMetric(float64(med(1))/float64(med(2)), "masked/unmasked")
		})
	}
}

// BenchmarkMaskWatchEvent measures the delay from updating a Secret to its
// MODIFIED event arriving on watches opened directly, through kubegate
// without masking, and through kubegate masking each event.
func BenchmarkMaskWatchEvent(b *testing.B) {
	t := maskBench(b)
	ctx := context.Background()
	names := []string{"direct", "unmasked", "masked"}
	var watches []watch.Interface
	for _, cfg := range []*rest.Config{t.direct, t.unmasked, t.masked} {
		w, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().Secrets(maskNamespace).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=s-00000"})
		if err != nil {
			b.Fatal(err)
		}
		defer w.Stop()
		watches = append(watches, w)
	}
	// One reader per watch notes when each round's event arrives.
	type arrival struct {
		watch int
		round string
		at    time.Time
	}
	arrivals := make(chan arrival, 64)
	for j, w := range watches {
		go func() {
			for ev := range w.ResultChan() {
				if s, ok := ev.Object.(*corev1.Secret); ok && ev.Type == watch.Modified {
					arrivals <- arrival{j, s.Labels["round"], time.Now()}
				}
			}
		}()
	}
	env := testenv.Get(b)
	delays := make([][]time.Duration, len(watches))
	for i := range b.N * 20 {
		sec, err := env.Client.CoreV1().Secrets(maskNamespace).Get(ctx, "s-00000", metav1.GetOptions{})
		if err != nil {
			b.Fatal(err)
		}
		round := fmt.Sprint(i)
		sec.Labels["round"] = round
		start := time.Now()
		if _, err := env.Client.CoreV1().Secrets(maskNamespace).Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < len(watches); {
			a := <-arrivals
			if a.round == round {
				delays[a.watch] = append(delays[a.watch], a.at.Sub(start))
				got++
			}
		}
	}
	for j, name := range names {
		slices.Sort(delays[j])
		b.ReportMetric(float64(delays[j][len(delays[j])/2].Microseconds())/1000, name+"-p50-ms")
	}
}
