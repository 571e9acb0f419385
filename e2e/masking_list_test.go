package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubegate/kubegate/internal/testenv"
	"github.com/kubegate/kubegate/k8swire"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// TestMaskingLargeListIsStreamed lists 400 Secrets of about 1.4 KiB each
// (a JSON list over the 256 KiB kubegate reads before it streams a list
// on, masked item by item): kubectl gets every item with every value
// masked, and the raw JSON is the apiserver's, byte for byte, but for the
// values replaced by the marker.
func TestMaskingLargeListIsStreamed(t *testing.T) {
	g := gateway(t)
	env := testenv.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	const n = 400
	stamp := fmt.Sprint(time.Now().UnixNano())
	label := "biglist-" + stamp
	values := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := range n {
		values[i] = fmt.Sprintf("biglist-%s-%04d-%s", stamp, i, strings.Repeat("x", 1000))
		env.NoteSecret("a planted Secret value of the large list", values[i])
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_, err := env.Client.CoreV1().Secrets("dev").Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("biglist-%04d", i), Labels: map[string]string{"biglist": label}},
				Data:       map[string][]byte{"password": []byte(values[i])}}, metav1.CreateOptions{})
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	defer env.Client.CoreV1().Secrets("dev").DeleteCollection(context.Background(), metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "biglist=" + label})
	if err := <-errs; err != nil {
		t.Fatal(err)
	}

	r := runKubectl(t, ctx, g.agentKubeconfig, protocols[0], nil, "-n", "dev", "get", "secrets", "-l", "biglist="+label, "-o", "json")
	if r.code != 0 {
		t.Fatalf("kubectl get secrets: exit %d: %s", r.code, userOutput(r.stderr))
	}
	var list corev1.SecretList
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("kubectl's output does not decode: %v", err)
	}
	if len(list.Items) != n {
		t.Fatalf("kubectl got %d Secrets, want %d", len(list.Items), n)
	}
	for _, s := range list.Items {
		if got := string(s.Data["password"]); got != k8swire.MaskMarker {
			t.Fatalf("%s: password %.40q, want the marker", s.Name, got)
		}
	}

	fetch := func(cfg *rest.Config) []byte {
		rc, err := kubernetes.NewForConfigOrDie(rest.CopyConfig(cfg)).CoreV1().RESTClient().Get().Namespace("dev").Resource("secrets").
			Param("labelSelector", "biglist="+label).SetHeader("Accept", "application/json").Stream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	agent, err := clientcmd.BuildConfigFromFlags("", g.agentKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	want := fetch(env.RESTConfig)
	if len(want) <= 256<<10 {
		t.Fatalf("the list is %d bytes: too short to be streamed", len(want))
	}
	for _, v := range values {
		want = bytes.Replace(want, []byte(base64.StdEncoding.EncodeToString([]byte(v))), []byte(k8swire.MaskMarkerBase64), 1)
	}
	got := fetch(agent)
	if !bytes.Equal(got, want) {
		t.Fatalf("through kubegate (%d bytes) differs from the apiserver's list with the values masked (%d bytes)", len(got), len(want))
	}
	for _, out := range []string{r.stdout, r.stderr, string(got)} {
		for _, v := range values {
			if strings.Contains(out, v) || strings.Contains(out, base64.StdEncoding.EncodeToString([]byte(v))) {
				t.Fatal("a planted value reached the client")
			}
		}
	}
}
