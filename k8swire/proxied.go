package k8swire

import (
	"net/http"
	"net/url"
	"strings"
)

// proxySubresources are the core resources whose proxy subresource can
// reach a kubelet's (or an apiserver's) exec, attach and port-forward
// endpoints.
var proxySubresources = map[string]string{"nodes": "nodes/proxy", "pods": "pods/proxy", "services": "services/proxy"}

// proxied describes a request through nodes/proxy, pods/proxy or
// services/proxy (or the legacy /proxy/ verb) whose proxied path is an
// exec, attach or port-forward: the kubelet's /exec, /run, /attach,
// /portForward or /cri endpoints, or an API path of pods/exec,
// pods/attach or pods/portforward. It returns the request as the stream it
// amounts to, with Via naming the proxy, so that rules about pods/exec
// apply to it; ok is false for any other proxied path.
func proxied(r *http.Request, req *Request, parts []string, depth int) (out Request, ok bool, err error) {
	via, isProxy := proxySubresources[req.Resource]
	if !req.IsResourceRequest || req.APIGroup != "" || !isProxy {
		return Request{}, false, nil
	}
	var rest []string
	switch {
	case req.Verb == "proxy" && len(parts) >= 2: // /api/v1/proxy/nodes/NAME/...
		rest = parts[2:]
	case req.Subresource == "proxy" && len(parts) >= 3:
		rest = parts[3:]
	default:
		return Request{}, false, nil
	}
	if len(rest) == 0 {
		return Request{}, false, nil
	}
	out = Request{
		Verb: "create", APIVersion: req.APIVersion, Resource: "pods", IsResourceRequest: true,
		Path: req.Path, Upgrade: req.Upgrade, Via: via,
	}
	q := r.URL.Query()
	switch strings.ToLower(rest[0]) {
	case "exec", "run", "attach", "portforward":
		// The kubelet's /{exec,run,attach}/NS/POD[/UID]/CONTAINER and
		// /portForward/NS/POD[/UID].
		out.Subresource = strings.ToLower(rest[0])
		if out.Subresource == "run" {
			out.Subresource = "exec"
		}
		if len(rest) > 1 {
			out.Namespace = rest[1]
		}
		if len(rest) > 2 {
			out.Name = rest[2]
		}
		s, err := streamParams(r, out.Subresource)
		if err != nil {
			return Request{}, false, err
		}
		if out.Subresource != "portforward" && len(rest) > 3 {
			s.Container = rest[len(rest)-1]
		}
		if strings.EqualFold(rest[0], "run") {
			// /run takes its command as one cmd parameter and answers with
			// the output, without a stream.
			s.Command = strings.Fields(q.Get("cmd"))
			s.Stdout, s.Stderr = true, true
		}
		out.Stream = s
		return out, true, nil
	case "cri":
		// The container runtime's streaming server, behind the kubelet;
		// its URLs carry a token, not the pod: the target is unknown.
		out.Subresource = "exec"
		out.Stream = &Stream{}
		return out, true, nil
	case "api", "apis":
		// An apiserver behind a service or pod proxy.
		if depth > 0 {
			return Request{}, false, nil
		}
		inner := r.Clone(r.Context())
		inner.URL = &url.URL{Path: "/" + strings.Join(rest, "/"), RawQuery: r.URL.RawQuery}
		in, err := classifyAt(inner, depth+1)
		if err != nil || in.Stream == nil {
			return Request{}, false, nil
		}
		in.Path, in.Via = req.Path, via
		return in, true, nil
	}
	return Request{}, false, nil
}
