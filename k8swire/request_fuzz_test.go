package k8swire

import (
	"bufio"
	"errors"
	"net/http"
	"path"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	apirequest "k8s.io/apiserver/pkg/endpoints/request"
)

// classifySeeds are request targets of the classification tests and the
// attack matrix's path tricks (e2e/attack_paths_test.go), with the method
// and upgrade headers they were sent with.
var classifySeeds = []struct {
	method, target, connection, upgrade string
}{
	{"GET", "/api/v1/namespaces/dev/pods/web", "", ""},
	{"GET", "/api/v1/namespaces/dev/pods?watch=true&resourceVersion=1", "", ""},
	{"GET", "/apis/apps/v1/namespaces/dev/deployments/web/scale", "", ""},
	{"DELETE", "/api/v1/namespaces/dev/pods", "", ""},
	{"delete", "/api/v1/namespaces/dev/pods/web", "", ""},
	{"POST", "/api/v1/namespaces/prod/pods/toolbox/exec?command=cat&command=/etc/os-release&stdout=true&tty=yes", "Upgrade", "SPDY/3.1"},
	{"GET", "/api/v1/namespaces/prod/pods/toolbox/exec?command=sh&stdin=1&stdout=1&tty=false&tty=true", "keep-alive, Upgrade", "websocket"},
	{"GET", "/api/v1/namespaces/prod/pods/toolbox/attach?container=c&stdin=FALSE&stdout", "Upgrade", "websocket"},
	{"GET", "/api/v1/namespaces/prod/pods/toolbox/portforward?ports=8080,9090", "Upgrade", "websocket"},
	{"POST", "/api/v1/namespaces/prod/pods/toolbox/portforward?ports=0", "Upgrade", "SPDY/3.1"},
	{"GET", "/api/v1/namespaces/prod/pods/toolbox/proxy/exec", "", ""},
	{"GET", "/api/v1/nodes/node-1/proxy/run/prod/toolbox/c?cmd=id", "", ""},
	{"GET", "/api/v1/namespaces/prod/services/web:80/proxy/portForward", "", ""},
	{"GET", "/api/v1/namespaces/prod/pods/toolbox/./exec", "", ""},
	{"GET", "/api/v1/namespaces/prod/pods/x/../toolbox/exec", "", ""},
	{"GET", "/api/v1/namespaces/prod//pods/toolbox/exec", "", ""},
	{"GET", "/api/v1/namespaces/prod/pods/toolbox%2Fexec", "", ""},
	{"GET", "/api/v1/namespaces/prod/pods/toolbox%5cexec", "", ""},
	{"GET", "/api/v1/namespaces/prod/secrets/", "", ""},
	{"GET", "/API/v1/namespaces/PROD/Secrets", "", ""},
	{"GET", "/api/v1/namespaces/prod/pods/%74oolbox/exec", "", ""},
	{"GET", "/version", "", ""},
	{"GET", "/apis", "", ""},
	{"GET", "/openapi/v3/apis/apps/v1", "", ""},
	{"GET", "*", "", ""},
	{"GET", "http://other/api/v1/secrets", "", ""},
}

// FuzzClassify parses a request line and headers as Go's HTTP server does
// and classifies the request. Whatever the input: Classify never panics;
// a refusal is ErrBadRequest; an accepted path is canonical, with no
// encoded slash or backslash; its fields are the apiserver's own
// RequestInfoFactory's (only the verb of a streaming upgrade becomes
// create); exactly the core pods exec, attach and portforward requests
// have stream parameters, whose flags are what the apiserver's parameter
// conversion (runtime.Convert_Slice_string_To_bool) reads.
func FuzzClassify(f *testing.F) {
	for _, s := range classifySeeds {
		f.Add(s.method, s.target, s.connection, s.upgrade)
	}
	// The apiserver's configuration of RequestInfoFactory (genericapiserver).
	apiserver := &apirequest.RequestInfoFactory{
		APIPrefixes:          sets.NewString("api", "apis"),
		GrouplessAPIPrefixes: sets.NewString("api"),
	}
	f.Fuzz(func(t *testing.T, method, target, connection, upgrade string) {
		raw := method + " " + target + " HTTP/1.1\r\nHost: kubegate\r\n"
		if connection != "" {
			raw += "Connection: " + connection + "\r\n"
		}
		if upgrade != "" {
			raw += "Upgrade: " + upgrade + "\r\n"
		}
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw + "\r\n")))
		if err != nil {
			return // the server answers 400 before kubegate sees it
		}
		got, err := Classify(r)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) && !errors.Is(err, ErrMethodNotAllowed) {
				t.Fatalf("%s %s: error %v is neither ErrBadRequest nor ErrMethodNotAllowed", method, target, err)
			}
			return
		}
		p := r.URL.Path
		if got.Path != p || path.Clean(p) != p || !strings.HasPrefix(p, "/") {
			t.Fatalf("%s %s: accepted path %q (URL path %q) is not canonical", method, target, got.Path, p)
		}
		if esc := r.URL.EscapedPath(); strings.Contains(esc, "%2") || strings.Contains(esc, "%5") {
			t.Fatalf("%s %s: accepted an encoded slash or backslash", method, target)
		}
		info, err := apiserver.NewRequestInfo(r)
		if err != nil {
			t.Fatalf("%s %s: kubegate classified what the apiserver refuses: %v", method, target, err)
		}
		if got.Via != "" {
			// A kubelet stream endpoint behind a proxy subresource: the
			// apiserver sees the proxy; kubegate classifies the pod stream
			// it amounts to.
			res, sub, _ := strings.Cut(got.Via, "/")
			if info.Resource != res || info.Subresource != sub || got.Resource != "pods" || got.Stream == nil ||
				got.Subresource != "exec" && got.Subresource != "attach" && got.Subresource != "portforward" {
				t.Fatalf("%s %s: kubegate %+v via %s, apiserver %+v", method, target, got, got.Via, *info)
			}
			return
		}
		isStream := info.IsResourceRequest && info.APIGroup == "" && info.Resource == "pods" &&
			(info.Subresource == "exec" || info.Subresource == "attach" || info.Subresource == "portforward")
		wantVerb := info.Verb
		if isStream && got.Upgrade != NoUpgrade {
			wantVerb = "create"
		}
		if got.Verb != wantVerb || got.APIGroup != info.APIGroup || got.APIVersion != info.APIVersion ||
			got.Resource != info.Resource || got.Subresource != info.Subresource ||
			got.Namespace != info.Namespace || got.Name != info.Name || got.IsResourceRequest != info.IsResourceRequest {
			t.Fatalf("%s %s: kubegate %+v, apiserver %+v", method, target, got, *info)
		}
		if (got.Stream != nil) != isStream {
			t.Fatalf("%s %s: stream parameters %+v for %s/%s", method, target, got.Stream, info.Resource, info.Subresource)
		}
		if got.Upgrade != NoUpgrade && !strings.Contains(strings.ToLower(connection), "upgrade") {
			t.Fatalf("%s %s: upgrade %q without Connection: upgrade", method, target, got.Upgrade)
		}
		if got.Stream == nil {
			return
		}
		q := r.URL.Query()
		for name, v := range map[string]bool{"stdin": got.Stream.Stdin, "stdout": got.Stream.Stdout, "stderr": got.Stream.Stderr, "tty": got.Stream.TTY} {
			var want bool
			if vs := q[name]; len(vs) > 0 {
				if err := runtime.Convert_Slice_string_To_bool(&vs, &want, nil); err != nil {
					t.Fatal(err)
				}
			}
			if v != want {
				t.Fatalf("%s %s: %s = %t, the apiserver reads %t", method, target, name, v, want)
			}
		}
		if got.Stream.Container != q.Get("container") {
			t.Fatalf("%s %s: container %q", method, target, got.Stream.Container)
		}
		if info.Subresource == "exec" && !slices.Equal(got.Stream.Command, q["command"]) {
			t.Fatalf("%s %s: command %q, query %q", method, target, got.Stream.Command, q["command"])
		}
		for _, port := range got.Stream.Ports {
			if port <= 0 || port > 65535 {
				t.Fatalf("%s %s: port %d", method, target, port)
			}
		}
	})
}
