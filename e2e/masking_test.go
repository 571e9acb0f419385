package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubegate/kubegate/internal/testenv"
	"github.com/kubegate/kubegate/k8swire"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// TestMaskingKeepsPlantedSecretsFromClientsAndStorage plants unique values
// in a Secret, a ConfigMap password, a Pod's env and a JWT an exec prints,
// then fetches them through kubegate every way an agent would: kubectl get
// -o json/yaml, describe, get -w while the Secret changes, exec output,
// client-go over protobuf, and an informer. No value reaches the agent, nor
// kubegate's data directory or log; an exempt admin sees them raw, and that
// is audited.
func TestMaskingKeepsPlantedSecretsFromClientsAndStorage(t *testing.T) {
	g := gateway(t)
	env := testenv.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	stamp := fmt.Sprint(time.Now().UnixNano())
	planted := map[string]string{
		"secret":    "s3cr3t-" + stamp,
		"secret2":   "rotated-" + stamp,
		"configmap": "cm-pass-" + stamp,
		"env":       "env-pass-" + stamp,
		"jwt":       "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ" + stamp + "In0.c2lnbmF0dXJl",
	}
	direct := env.Client.CoreV1()
	if _, err := direct.Secrets("dev").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "planted"},
		Data: map[string][]byte{"password": []byte(planted["secret"])}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := direct.ConfigMaps("dev").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "planted"},
		Data: map[string]string{"db-password": planted["configmap"], "color": "blue"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "planted-env"}, Spec: corev1.PodSpec{NodeName: "testnode",
		Containers: []corev1.Container{{Name: "main", Image: "testkubelet/local", Command: []string{"sleep", "3600"},
			Env: []corev1.EnvVar{{Name: "DB_PASSWORD", Value: planted["env"]}, {Name: "MODE", Value: "plain"}}}}}}
	if _, err := direct.Pods("dev").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer direct.Pods("dev").Delete(context.Background(), "planted-env", metav1.DeleteOptions{})

	var outputs []string
	agent := func(args ...string) result {
		t.Helper()
		r := runKubectl(t, ctx, g.agentKubeconfig, protocols[0], nil, args...)
		outputs = append(outputs, r.stdout, r.stderr)
		return r
	}
	for _, args := range [][]string{
		{"get", "secrets"}, // a Table
		{"get", "secret", "planted", "-o", "json"},
		{"get", "secret", "planted", "-o", "yaml"},
		{"describe", "secret", "planted"},
		{"get", "configmap", "planted", "-o", "yaml"},
		{"get", "pod", "planted-env", "-o", "json"},
		// The JWT is assembled in the pod: kubegate refuses a request whose
		// query string holds a token, and an exec's argv is in the query.
		{"exec", "toolbox", "--", "sh", "-c", "h=eyJhbGciOiJIUzI1NiJ9; p=eyJzdWIiOiJ" + stamp + "In0; echo token=$h.$p.c2lnbmF0dXJl"},
	} {
		if r := agent(args...); r.code != 0 {
			t.Fatalf("kubectl %v: %s", args, userOutput(r.stderr))
		}
	}
	if !slices.ContainsFunc(outputs, func(out string) bool { return strings.Contains(out, "token="+k8swire.MaskMarker+"\n") }) {
		t.Errorf("no exec output shows the masked token")
	}
	if r := agent("get", "pod", "planted-env", "-o", "jsonpath={.spec.containers[0].env}"); !strings.Contains(r.stdout, k8swire.MaskMarker) || !strings.Contains(r.stdout, `"plain"`) {
		t.Errorf("pod env through kubegate: %s", r.stdout)
	}
	if r := agent("get", "secret", "planted", "-o", "jsonpath={.data.password}"); r.stdout != k8swire.MaskMarkerBase64 {
		t.Errorf("masked Secret data is %q, want valid base64 of the marker", r.stdout)
	}
	if r := agent("get", "configmap", "planted", "-o", "jsonpath={.data.color}"); r.stdout != "blue" {
		t.Errorf("an unmasked ConfigMap key changed: %q", r.stdout)
	}

	// get -w while the Secret is updated.
	watch := startKubectl(t, ctx, g.agentKubeconfig, nil, "get", "secret", "planted", "-w", "--output-watch-events", "-o", "json")
	waitUntil(ctx, func() bool { return strings.Contains(watch.stdout.String(), `"ADDED"`) })
	sec, err := direct.Secrets("dev").Get(ctx, "planted", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sec.Data["password"] = []byte(planted["secret2"])
	if _, err := direct.Secrets("dev").Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(ctx, func() bool { return strings.Contains(watch.stdout.String(), `"MODIFIED"`) }) {
		t.Fatalf("the watch never showed the update: %s", userOutput(watch.stderr.String()))
	}
	_ = watch.cmd.Process.Kill()
	watch.wait(t, ctx)
	outputs = append(outputs, watch.stdout.String(), watch.stderr.String())

	// client-go over protobuf, and an informer.
	cfg, err := clientcmd.BuildConfigFromFlags("", g.agentKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ContentType = runtime.ContentTypeProtobuf
	cfg.AcceptContentTypes = runtime.ContentTypeProtobuf
	cs := kubernetes.NewForConfigOrDie(cfg)
	got, err := cs.CoreV1().Secrets("dev").Get(ctx, "planted", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("protobuf get: %v", err)
	}
	outputs = append(outputs, string(got.Data["password"]))
	if string(got.Data["password"]) != k8swire.MaskMarker {
		t.Errorf("protobuf Secret data decodes to %q", got.Data["password"])
	}
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace("dev"))
	inf := factory.Core().V1().Secrets().Informer()
	stop := make(chan struct{})
	defer close(stop)
	factory.Start(stop)
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("informer never synced")
	}
	for _, obj := range inf.GetStore().List() {
		for _, v := range obj.(*corev1.Secret).Data {
			outputs = append(outputs, string(v))
		}
	}

	for what, v := range planted {
		for _, out := range outputs {
			if strings.Contains(out, v) || strings.Contains(out, base64.StdEncoding.EncodeToString([]byte(v))) {
				t.Errorf("the planted %s value reached the agent:\n%s", what, out)
				break
			}
		}
	}

	// The exempt admin sees raw values; that is audited.
	r := runKubectl(t, ctx, g.adminKubeconfig, protocols[0], nil, "get", "secret", "planted", "-o", "jsonpath={.data.password}")
	if raw, _ := base64.StdEncoding.DecodeString(r.stdout); string(raw) != planted["secret2"] {
		t.Errorf("the exempt admin got %q", r.stdout)
	}
	findAuditEvent(t, g.auditPath, func(e auditEvent) bool {
		return e.Annotations["kubegate.dev/mask-exempt"] == "dex:platform-admins" && e.ObjectRef != nil && e.ObjectRef.Name == "planted"
	})

	// Nothing stored holds a planted value: audit events, recordings, the log.
	stored := []string{filepath.Dir(filepath.Dir(g.auditPath)), filepath.Join(env.Dir, "logs", "kubegate.log")}
	for _, root := range stored {
		_ = filepath.Walk(root, func(path string, info os.FileInfo, err error) error {
			if err != nil || info.IsDir() {
				return nil
			}
			b, _ := os.ReadFile(path)
			for what, v := range planted {
				if bytes.Contains(b, []byte(v)) {
					t.Errorf("the planted %s value is stored in %s", what, path)
				}
			}
			return nil
		})
	}
}

// TestMaskingKeepsOtherFieldsByteIdentical: apart from the masked value, a
// Secret through kubegate is byte for byte what the apiserver sent.
func TestMaskingKeepsOtherFieldsByteIdentical(t *testing.T) {
	g := gateway(t)
	env := testenv.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	value := "identical-" + fmt.Sprint(time.Now().UnixNano())
	if _, err := env.Client.CoreV1().Secrets("dev").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "identical", Labels: map[string]string{"a": "b"}},
		Data: map[string][]byte{"k": []byte(value)}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	fetch := func(cfgPath string, direct bool) []byte {
		cfg := env.RESTConfig
		if !direct {
			var err error
			if cfg, err = clientcmd.BuildConfigFromFlags("", cfgPath); err != nil {
				t.Fatal(err)
			}
		}
		cfg = rest.CopyConfig(cfg)
		cs := kubernetes.NewForConfigOrDie(cfg)
		rc, err := cs.CoreV1().RESTClient().Get().Namespace("dev").Resource("secrets").Name("identical").SetHeader("Accept", "application/json").Stream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		return b
	}
	want := bytes.Replace(fetch("", true), []byte(base64.StdEncoding.EncodeToString([]byte(value))), []byte(k8swire.MaskMarkerBase64), 1)
	if got := fetch(g.agentKubeconfig, false); !bytes.Equal(got, want) {
		t.Errorf("through kubegate:\n%s\nwant (direct, value replaced by the marker):\n%s", got, want)
	}
}
