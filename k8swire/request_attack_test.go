package k8swire

import (
	"errors"
	"net/http/httptest"
	"slices"
	"testing"
)

// TestClassifyProxiedStreams checks that an exec, attach or port-forward
// reached through a proxy subresource is classified as the stream it
// amounts to, so rules about pods/exec see it.
func TestClassifyProxiedStreams(t *testing.T) {
	type want struct {
		via, sub, ns, name, container string
		command                       []string
	}
	cases := []struct {
		name, method, path string
		want               *want // nil: not a proxied stream
	}{
		{"nodes/proxy exec", "POST", "/api/v1/nodes/n1/proxy/exec/prod/toolbox/main?command=sh&command=-c&command=id&stdout=1",
			&want{"nodes/proxy", "exec", "prod", "toolbox", "main", []string{"sh", "-c", "id"}}},
		{"nodes/proxy exec with a pod uid", "POST", "/api/v1/nodes/n1/proxy/exec/prod/toolbox/0a1b/main?command=id",
			&want{"nodes/proxy", "exec", "prod", "toolbox", "main", []string{"id"}}},
		{"nodes/proxy run", "POST", "/api/v1/nodes/n1/proxy/run/prod/toolbox/main?cmd=cat+/etc/os-release",
			&want{"nodes/proxy", "exec", "prod", "toolbox", "main", []string{"cat", "/etc/os-release"}}},
		{"nodes/proxy attach", "GET", "/api/v1/nodes/n1/proxy/attach/prod/toolbox/main?stdout=true",
			&want{"nodes/proxy", "attach", "prod", "toolbox", "main", nil}},
		{"nodes/proxy portForward", "GET", "/api/v1/nodes/n1/proxy/portForward/prod/toolbox?port=80",
			&want{"nodes/proxy", "portforward", "prod", "toolbox", "", nil}},
		{"nodes/proxy upper-case EXEC", "POST", "/api/v1/nodes/n1/proxy/EXEC/prod/toolbox/main",
			&want{"nodes/proxy", "exec", "prod", "toolbox", "main", nil}},
		{"nodes/proxy cri", "GET", "/api/v1/nodes/n1/proxy/cri/exec/abcdef",
			&want{"nodes/proxy", "exec", "", "", "", nil}},
		{"legacy proxy verb", "POST", "/api/v1/proxy/nodes/n1/run/prod/toolbox/main?cmd=id",
			&want{"nodes/proxy", "exec", "prod", "toolbox", "main", []string{"id"}}},
		{"pods/proxy to a kubelet", "POST", "/api/v1/namespaces/dev/pods/https:toolbox:10250/proxy/run/prod/toolbox/main?cmd=id",
			&want{"pods/proxy", "exec", "prod", "toolbox", "main", []string{"id"}}},
		{"services/proxy to an apiserver", "POST", "/api/v1/namespaces/default/services/https:kubernetes:443/proxy/api/v1/namespaces/prod/pods/toolbox/exec?command=id",
			&want{"services/proxy", "exec", "prod", "toolbox", "", []string{"id"}}},
		{"nodes/proxy to the kubelet's pod list", "GET", "/api/v1/nodes/n1/proxy/pods", nil},
		{"nodes/proxy root", "GET", "/api/v1/nodes/n1/proxy", nil},
		{"services/proxy to an app", "GET", "/api/v1/namespaces/dev/services/web:80/proxy/index.html", nil},
		{"services/proxy to an apiserver list", "GET", "/api/v1/namespaces/default/services/https:kubernetes:443/proxy/api/v1/namespaces/prod/pods", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := Classify(httptest.NewRequest(tc.method, tc.path, nil))
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				if req.Via != "" || req.Stream != nil {
					t.Fatalf("classified as a proxied stream: %+v", req)
				}
				return
			}
			w := tc.want
			if req.Via != w.via || req.Resource != "pods" || req.Subresource != w.sub || req.Namespace != w.ns || req.Name != w.name || req.Verb != "create" {
				t.Fatalf("got via %q %s %s/%s %s/%s, want via %q create pods/%s %s/%s", req.Via, req.Verb, req.Resource, req.Subresource, req.Namespace, req.Name, w.via, w.sub, w.ns, w.name)
			}
			if req.Stream == nil || req.Stream.Container != w.container || !slices.Equal(req.Stream.Command, w.command) {
				t.Fatalf("stream %+v, want container %q command %q", req.Stream, w.container, w.command)
			}
			if req.Path != httptest.NewRequest(tc.method, tc.path, nil).URL.Path {
				t.Errorf("path %q: the original path must stay", req.Path)
			}
		})
	}
}

// TestClassifyRefusesWhatTheAPIServerWouldNotServe: non-canonical methods,
// namespaces that cannot exist and upgrades other than WebSocket and SPDY.
func TestClassifyRefusesWhatTheAPIServerWouldNotServe(t *testing.T) {
	cases := []struct {
		name, method, path string
		hdr                map[string]string
		want               error // nil: classified
	}{
		{"lower-case delete", "delete", "/api/v1/namespaces/prod/configmaps/x", nil, ErrMethodNotAllowed},
		{"mixed-case Get", "Get", "/api/v1/namespaces/prod/configmaps/x", nil, ErrMethodNotAllowed},
		{"TRACE", "TRACE", "/api/v1/namespaces/prod/configmaps/x", nil, ErrMethodNotAllowed},
		{"PURGE on a non-resource path", "PURGE", "/version", nil, ErrMethodNotAllowed},
		{"OPTIONS on a resource", "OPTIONS", "/api/v1/namespaces/prod/configmaps/x", nil, ErrMethodNotAllowed},
		{"OPTIONS on a non-resource path", "OPTIONS", "/version", nil, nil},
		{"DELETE", "DELETE", "/api/v1/namespaces/prod/configmaps/x", nil, nil},
		{"upper-case namespace", "DELETE", "/api/v1/namespaces/PROD/configmaps/x", nil, ErrBadRequest},
		{"upper-case namespace object", "GET", "/api/v1/namespaces/PROD", nil, ErrBadRequest},
		{"namespace with a dot", "GET", "/api/v1/namespaces/prod.x/pods", nil, ErrBadRequest},
		{"namespace list", "GET", "/api/v1/namespaces", nil, nil},
		{"h2c upgrade", "GET", "/api/v1/namespaces/dev/pods", map[string]string{"Connection": "Upgrade, HTTP2-Settings", "Upgrade": "h2c"}, ErrBadRequest},
		{"unknown upgrade", "POST", "/api/v1/namespaces/prod/pods/p/exec", map[string]string{"Connection": "Upgrade", "Upgrade": "foo"}, ErrBadRequest},
		{"Upgrade without Connection", "GET", "/api/v1/namespaces/dev/pods", map[string]string{"Upgrade": "h2c"}, nil},
		{"websocket", "GET", "/api/v1/namespaces/dev/pods/p/exec", map[string]string{"Connection": "Upgrade", "Upgrade": "websocket"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tc.path, nil)
			r.Method = tc.method
			for k, v := range tc.hdr {
				r.Header.Set(k, v)
			}
			_, err := Classify(r)
			if tc.want == nil && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
}
