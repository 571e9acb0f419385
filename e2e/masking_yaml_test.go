package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
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

// TestMaskingYAMLResponses asks the apiserver for YAML (Accept:
// application/yaml, which it serves for get and list) through kubegate:
// the Secret's value is masked, and the rest of the body is byte for byte
// the apiserver's YAML; a CBOR request, which kubegate cannot mask, is
// refused rather than passed.
func TestMaskingYAMLResponses(t *testing.T) {
	g := gateway(t)
	env := testenv.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	value := "yaml-" + fmt.Sprint(time.Now().UnixNano())
	if _, err := env.Client.CoreV1().Secrets("dev").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "yaml-planted", Labels: map[string]string{"a": "b"}},
		Data: map[string][]byte{"k": []byte(value)}, StringData: nil}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer env.Client.CoreV1().Secrets("dev").Delete(context.Background(), "yaml-planted", metav1.DeleteOptions{})
	agent, err := clientcmd.BuildConfigFromFlags("", g.agentKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(cfg *rest.Config, accept, name string) ([]byte, error) {
		cs := kubernetes.NewForConfigOrDie(rest.CopyConfig(cfg))
		req := cs.CoreV1().RESTClient().Get().Namespace("dev").Resource("secrets").SetHeader("Accept", accept)
		if name != "" {
			req = req.Name(name)
		}
		rc, err := req.Stream(ctx)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}
	encoded := []byte(base64.StdEncoding.EncodeToString([]byte(value)))
	for _, name := range []string{"yaml-planted", ""} { // get and list
		direct, err := fetch(env.RESTConfig, "application/yaml", name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(direct, []byte("kind: Secret")) && !bytes.Contains(direct, []byte("kind: SecretList")) {
			t.Fatalf("the apiserver did not answer in YAML:\n%s", direct)
		}
		got, err := fetch(agent, "application/yaml", name)
		if err != nil {
			t.Fatalf("YAML through kubegate: %v", err)
		}
		if bytes.Contains(got, []byte(value)) || bytes.Contains(got, encoded) {
			t.Errorf("the planted value passed in YAML:\n%s", got)
		}
		if !bytes.Contains(got, []byte("k: "+k8swire.MaskMarkerBase64)) {
			t.Errorf("no masked value in:\n%s", got)
		}
		if name != "" {
			// Other Secrets of dev are masked too in a list; for one
			// Secret, only its value differs.
			want := bytes.Replace(direct, encoded, []byte(k8swire.MaskMarkerBase64), 1)
			if !bytes.Equal(got, want) {
				t.Errorf("through kubegate:\n%s\nwant (direct, value replaced by the marker):\n%s", got, want)
			}
		}
	}
	// CBOR: where the apiserver serves it, kubegate refuses it.
	if direct, err := fetch(env.RESTConfig, "application/cbor", "yaml-planted"); err != nil || !bytes.Contains(direct, []byte(value)) {
		t.Logf("the apiserver does not serve CBOR here (%v); not checked", err)
	} else if got, err := fetch(agent, "application/cbor", "yaml-planted"); err == nil || bytes.Contains(got, []byte(value)) {
		t.Errorf("CBOR through kubegate: %v, value passed: %v", err, bytes.Contains(got, []byte(value)))
	}
}
