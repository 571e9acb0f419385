package policy

import (
	"encoding/json"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// workloadKind is a kind that carries a pod spec, and where.
type workloadKind struct {
	kind, group, resource string
	specPath              []string
	build                 func(corev1.PodSpec) runtime.Object
}

func objectMeta() metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: "web", Namespace: "default", Labels: map[string]string{"app": "web"}}
}

func template(spec corev1.PodSpec) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}}, Spec: spec}
}

var selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}

var workloadKinds = []workloadKind{
	{"Pod", "", "pods", []string{"spec"}, func(s corev1.PodSpec) runtime.Object {
		return &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: objectMeta(), Spec: s}
	}},
	{"Deployment", "apps", "deployments", []string{"spec", "template", "spec"}, func(s corev1.PodSpec) runtime.Object {
		return &appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}, ObjectMeta: objectMeta(),
			Spec: appsv1.DeploymentSpec{Selector: selector, Template: template(s)}}
	}},
	{"StatefulSet", "apps", "statefulsets", []string{"spec", "template", "spec"}, func(s corev1.PodSpec) runtime.Object {
		return &appsv1.StatefulSet{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"}, ObjectMeta: objectMeta(),
			Spec: appsv1.StatefulSetSpec{Selector: selector, Template: template(s)}}
	}},
	{"DaemonSet", "apps", "daemonsets", []string{"spec", "template", "spec"}, func(s corev1.PodSpec) runtime.Object {
		return &appsv1.DaemonSet{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"}, ObjectMeta: objectMeta(),
			Spec: appsv1.DaemonSetSpec{Selector: selector, Template: template(s)}}
	}},
	{"ReplicaSet", "apps", "replicasets", []string{"spec", "template", "spec"}, func(s corev1.PodSpec) runtime.Object {
		return &appsv1.ReplicaSet{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "ReplicaSet"}, ObjectMeta: objectMeta(),
			Spec: appsv1.ReplicaSetSpec{Selector: selector, Template: template(s)}}
	}},
	{"ReplicationController", "", "replicationcontrollers", []string{"spec", "template", "spec"}, func(s corev1.PodSpec) runtime.Object {
		t := template(s)
		return &corev1.ReplicationController{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ReplicationController"}, ObjectMeta: objectMeta(),
			Spec: corev1.ReplicationControllerSpec{Selector: map[string]string{"app": "web"}, Template: &t}}
	}},
	{"Job", "batch", "jobs", []string{"spec", "template", "spec"}, func(s corev1.PodSpec) runtime.Object {
		return &batchv1.Job{TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"}, ObjectMeta: objectMeta(),
			Spec: batchv1.JobSpec{Template: template(s)}}
	}},
	{"CronJob", "batch", "cronjobs", []string{"spec", "jobTemplate", "spec", "template", "spec"}, func(s corev1.PodSpec) runtime.Object {
		return &batchv1.CronJob{TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "CronJob"}, ObjectMeta: objectMeta(),
			Spec: batchv1.CronJobSpec{Schedule: "@hourly", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: template(s)}}}}
	}},
	{"PodTemplate", "", "podtemplates", []string{"template", "spec"}, func(s corev1.PodSpec) runtime.Object {
		return &corev1.PodTemplate{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PodTemplate"}, ObjectMeta: objectMeta(), Template: template(s)}
	}},
}

func plainPodSpec() corev1.PodSpec {
	return corev1.PodSpec{
		Containers: []corev1.Container{{Name: "app", Image: "nginx:1.27",
			SecurityContext: &corev1.SecurityContext{Privileged: new(false), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}}},
		Volumes: []corev1.Volume{{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
	}
}

func privilegedContext() *corev1.SecurityContext {
	return &corev1.SecurityContext{Privileged: new(true)}
}

// privilegedField is one way to make a pod spec privileged, written as a
// change to a typed spec, as a partial spec for merge patches, and as a
// JSON patch operation below the spec.
type privilegedField struct {
	name     string
	mutate   func(*corev1.PodSpec)
	partial  string // partial pod spec, JSON
	op       string // JSON patch op
	opPath   string // below the pod spec
	opValue  string // JSON
	want     string // in the finding for an object or a merge patch
	wantOp   string // in the finding for a JSON patch
	kindOnly string // when set, only this kind (ephemeral containers live on pods)
}

var privilegedFields = []privilegedField{{
	name:    "privileged container",
	mutate:  func(s *corev1.PodSpec) { s.Containers[0].SecurityContext = privilegedContext() },
	partial: `{"containers":[{"name":"app","securityContext":{"privileged":true}}]}`,
	op:      "replace", opPath: "/containers/0/securityContext", opValue: `{"privileged":true}`,
	want:   `container "app" sets securityContext.privileged: true`,
	wantOp: `containers[0] sets securityContext.privileged: true`,
}, {
	name: "added capabilities",
	mutate: func(s *corev1.PodSpec) {
		s.Containers[0].SecurityContext.Capabilities.Add = []corev1.Capability{"NET_ADMIN"}
	},
	partial: `{"containers":[{"name":"app","securityContext":{"capabilities":{"add":["NET_ADMIN"]}}}]}`,
	op:      "add", opPath: "/containers/0/securityContext/capabilities/add/-", opValue: `"NET_ADMIN"`,
	want:   `container "app" adds capabilities [NET_ADMIN]`,
	wantOp: `containers[0] adds capabilities [NET_ADMIN]`,
}, {
	name: "privileged initContainer",
	mutate: func(s *corev1.PodSpec) {
		s.InitContainers = []corev1.Container{{Name: "init", Image: "busybox", SecurityContext: privilegedContext()}}
	},
	partial: `{"initContainers":[{"name":"init","image":"busybox","securityContext":{"privileged":true}}]}`,
	op:      "add", opPath: "/initContainers", opValue: `[{"name":"init","image":"busybox","securityContext":{"privileged":true}}]`,
	want:   `initContainer "init" sets securityContext.privileged: true`,
	wantOp: `initContainer "init" sets securityContext.privileged: true`,
}, {
	name: "privileged ephemeralContainer",
	mutate: func(s *corev1.PodSpec) {
		s.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
			Name: "debug", Image: "busybox", SecurityContext: privilegedContext()}}}
	},
	partial: `{"ephemeralContainers":[{"name":"debug","image":"busybox","securityContext":{"privileged":true}}]}`,
	op:      "add", opPath: "/ephemeralContainers/-", opValue: `{"name":"debug","image":"busybox","securityContext":{"privileged":true}}`,
	want:     `ephemeralContainer "debug" sets securityContext.privileged: true`,
	wantOp:   `ephemeralContainer "debug" sets securityContext.privileged: true`,
	kindOnly: "Pod",
}, {
	name:    "hostPID",
	mutate:  func(s *corev1.PodSpec) { s.HostPID = true },
	partial: `{"hostPID":true}`,
	op:      "add", opPath: "/hostPID", opValue: `true`,
	want: "pod spec sets hostPID: true", wantOp: "pod spec sets hostPID: true",
}, {
	name:    "hostIPC",
	mutate:  func(s *corev1.PodSpec) { s.HostIPC = true },
	partial: `{"hostIPC":true}`,
	op:      "replace", opPath: "/hostIPC", opValue: `true`,
	want: "pod spec sets hostIPC: true", wantOp: "pod spec sets hostIPC: true",
}, {
	name:    "hostNetwork",
	mutate:  func(s *corev1.PodSpec) { s.HostNetwork = true },
	partial: `{"hostNetwork":true}`,
	op:      "add", opPath: "/hostNetwork", opValue: `true`,
	want: "pod spec sets hostNetwork: true", wantOp: "pod spec sets hostNetwork: true",
}, {
	name: "hostPath volume",
	mutate: func(s *corev1.PodSpec) {
		s.Volumes = append(s.Volumes, corev1.Volume{Name: "root", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}})
	},
	partial: `{"volumes":[{"name":"root","hostPath":{"path":"/"}}]}`,
	op:      "add", opPath: "/volumes/-", opValue: `{"name":"root","hostPath":{"path":"/"}}`,
	want: `volume "root" uses hostPath`, wantOp: `volume "root" uses hostPath`,
}}

// encoding is one way a client sends a workload: a whole object, or a
// patch of one.
type encoding struct {
	name, contentType, verb string
	// body returns the body for kind with the pod spec spec, where f (nil
	// for the plain workload) made it privileged.
	body func(tb testing.TB, k workloadKind, spec corev1.PodSpec, f *privilegedField) []byte
}

var encodings = []encoding{
	{"json", ContentTypeJSON, "create", func(tb testing.TB, k workloadKind, spec corev1.PodSpec, _ *privilegedField) []byte {
		return mustJSON(tb, k.build(spec))
	}},
	{"yaml", ContentTypeYAML, "create", func(tb testing.TB, k workloadKind, spec corev1.PodSpec, _ *privilegedField) []byte {
		return mustYAML(tb, k.build(spec))
	}},
	{"protobuf", ContentTypeProtobuf, "create", func(tb testing.TB, k workloadKind, spec corev1.PodSpec, _ *privilegedField) []byte {
		return encodeProtobuf(tb, k.build(spec))
	}},
	{"apply", ContentTypeApplyPatch, "patch", func(tb testing.TB, k workloadKind, spec corev1.PodSpec, _ *privilegedField) []byte {
		return mustYAML(tb, k.build(spec))
	}},
	{"merge patch", ContentTypeMergePatch, "patch", mergePatch},
	{"strategic merge patch", ContentTypeStrategicPatch + "; charset=utf-8", "patch", mergePatch},
	{"json patch", ContentTypeJSONPatch, "patch", func(tb testing.TB, k workloadKind, _ corev1.PodSpec, f *privilegedField) []byte {
		base := "/" + strings.Join(k.specPath, "/")
		if f == nil {
			return []byte(`[{"op":"test","path":"/metadata/name","value":"web"},{"op":"replace","path":"` + base + `/containers/0/image","value":"nginx:1.28"}]`)
		}
		return []byte(`[{"op":"` + f.op + `","path":"` + base + f.opPath + `","value":` + f.opValue + `}]`)
	}},
}

// mergePatch nests the field's partial pod spec where kind keeps its spec.
func mergePatch(tb testing.TB, k workloadKind, _ corev1.PodSpec, f *privilegedField) []byte {
	partial := `{"containers":[{"name":"app","image":"nginx:1.28"}]}`
	if f != nil {
		partial = f.partial
	}
	var v any
	if err := json.Unmarshal([]byte(partial), &v); err != nil {
		tb.Fatal(err)
	}
	for i := len(k.specPath) - 1; i >= 0; i-- {
		v = map[string]any{k.specPath[i]: v}
	}
	return mustJSON(tb, v)
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func mustYAML(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// workloadInput is the request that sends body for kind.
func workloadInput(k workloadKind, enc encoding, body []byte) Input {
	name := ""
	if enc.verb != "create" {
		name = "web"
	}
	return Input{
		Subject:     Subject{User: "alice", Groups: []string{"dev"}},
		Request:     resourceRequest(enc.verb, k.group, k.resource, "", "default", name),
		Body:        body,
		ContentType: enc.contentType,
	}
}

// TestPrivilegedWorkloads sends every workload kind, plain and with each
// privileged field, in every encoding, through the default rules.
func TestPrivilegedWorkloads(t *testing.T) {
	e := mustNew(t, Config{DefaultRules: true, Rules: []Rule{allowAll}})
	for _, k := range workloadKinds {
		for _, enc := range encodings {
			t.Run(k.kind+"/"+enc.name+"/plain", func(t *testing.T) {
				in := workloadInput(k, enc, enc.body(t, k, plainPodSpec(), nil))
				if d := e.Decide(in); d.Action != Allow || d.Rule != "allow-all" {
					t.Errorf("plain %s: got %s, want allow by rule allow-all", k.kind, d)
				}
			})
			for _, f := range privilegedFields {
				if f.kindOnly != "" && f.kindOnly != k.kind {
					continue
				}
				t.Run(k.kind+"/"+enc.name+"/"+f.name, func(t *testing.T) {
					spec := plainPodSpec()
					f.mutate(&spec)
					in := workloadInput(k, enc, enc.body(t, k, spec, &f))
					d := e.Decide(in)
					want := f.want
					if enc.contentType == ContentTypeJSONPatch {
						want = f.wantOp
					}
					if d.Action != Deny || d.Rule != DenyPrivilegedRule {
						t.Fatalf("got %s, want deny by rule %s", d, DenyPrivilegedRule)
					}
					if !strings.HasPrefix(d.Message, "privileged workloads are not allowed: ") || !strings.Contains(d.Message, want) {
						t.Errorf("message %q does not name %q", d.Message, want)
					}
				})
			}
		}
	}
}

// TestDefaultRuleScope checks what the built-in rule looks at, and what it
// leaves alone.
func TestDefaultRuleScope(t *testing.T) {
	e := mustNew(t, Config{DefaultRules: true, Rules: []Rule{allowAll}})
	privilegedPod := `{"apiVersion":"v1","kind":"Pod","spec":{"containers":[{"name":"app","image":"x","securityContext":{"privileged":true}}]}}`
	input := func(verb, group, resource, sub, ct, body string) Input {
		return Input{Subject: Subject{User: "alice"}, Request: resourceRequest(verb, group, resource, sub, "dev", "web"), ContentType: ct, Body: []byte(body)}
	}
	for _, tc := range []struct {
		name     string
		in       Input
		wantRule string
	}{
		{"debug container patch", input("patch", "", "pods", "ephemeralcontainers", ContentTypeStrategicPatch,
			`{"spec":{"ephemeralContainers":[{"name":"debugger","image":"busybox","securityContext":{"capabilities":{"add":["SYS_PTRACE"]}}}]}}`), DenyPrivilegedRule},
		{"update a pod", input("update", "", "pods", "", ContentTypeJSON, privilegedPod), DenyPrivilegedRule},
		{"extensions daemonset", input("create", "extensions", "daemonsets", "", ContentTypeJSON, `{"spec":{"template":{"spec":{"hostPID":true}}}}`), DenyPrivilegedRule},
		{"configmap holding a pod", input("create", "", "configmaps", "", ContentTypeJSON, `{"kind":"ConfigMap","data":{"privileged":"true"},"spec":{"hostPID":true}}`), "allow-all"},
		{"custom resource", input("create", "example.com", "widgets", "", ContentTypeJSON, privilegedPod), "allow-all"},
		{"delete with a body", input("delete", "", "pods", "", ContentTypeJSON, privilegedPod), "allow-all"},
		{"status update", input("update", "", "pods", "status", ContentTypeJSON, privilegedPod), "allow-all"},
		{"exec", input("create", "", "pods", "exec", ContentTypeJSON, privilegedPod), "allow-all"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d := e.Decide(tc.in); d.Rule != tc.wantRule {
				t.Errorf("got %s, want a decision by rule %s", d, tc.wantRule)
			}
		})
	}
	if r := e.Rules()[0]; r.Name != DenyPrivilegedRule || r.Expression != "kubegate.privileged(object)" || r.Action != Deny {
		t.Errorf("first rule = %+v, want the built-in rule", r)
	}
	if n := len(mustNew(t, Config{Rules: []Rule{allowAll}}).Rules()); n != 1 {
		t.Errorf("without DefaultRules there are %d rules, want 1", n)
	}
}
