package k8swire

import (
	"errors"
	"fmt"
	"net/http"
	"path"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/sets"
	apirequest "k8s.io/apiserver/pkg/endpoints/request"
)

// Upgrade is the streaming protocol a request asks to switch to.
type Upgrade string

// The upgrades kubegate knows.
const (
	NoUpgrade Upgrade = ""
	WebSocket Upgrade = "websocket"
	SPDY      Upgrade = "spdy"
)

// Request is a classified Kubernetes API request. It is what policy rules
// and audit events see.
type Request struct {
	// Verb is the Kubernetes verb (get, list, watch, create, update, patch,
	// delete, deletecollection), or the lowercase HTTP method for
	// non-resource requests. Upgrades on exec, attach and portforward are
	// create, whatever their HTTP method.
	Verb string
	// APIGroup is "" for the core group.
	APIGroup    string
	APIVersion  string
	Resource    string
	Subresource string
	// Namespace is "" for cluster-scoped requests.
	Namespace string
	Name      string
	// IsResourceRequest is false for /version, /healthz, discovery roots and
	// other non-resource paths.
	IsResourceRequest bool
	// Path is the request's URL path.
	Path string
	// Upgrade is the protocol the client asks to switch to, if any.
	Upgrade Upgrade
	// Stream describes exec, attach and portforward requests; nil otherwise.
	Stream *Stream
}

// Stream holds the parameters of an exec, attach or portforward request.
type Stream struct {
	Container string
	// Command is the exec command's argv; empty for attach and portforward.
	Command []string
	Stdin   bool
	Stdout  bool
	Stderr  bool
	TTY     bool
	// Ports are the ports a legacy WebSocket port-forward names in its query
	// (?ports=). SPDY port-forwards name their ports per stream, later.
	Ports []int32
}

// ErrBadRequest marks a request kubegate refuses to classify.
var ErrBadRequest = errors.New("bad request")

var streamSubresources = sets.New("exec", "attach", "portforward")

var infoFactory = &apirequest.RequestInfoFactory{
	APIPrefixes:          sets.NewString("api", "apis"),
	GrouplessAPIPrefixes: sets.NewString("api"),
}

// Classify describes r as a Kubernetes API request. It refuses paths the
// apiserver might route differently from how they read: dot segments,
// doubled slashes and encoded slashes.
func Classify(r *http.Request) (Request, error) {
	p := r.URL.Path
	if p == "" || p[0] != '/' {
		return Request{}, fmt.Errorf("%w: path %q is not absolute", ErrBadRequest, p)
	}
	if r.URL.RawPath != "" && r.URL.RawPath != r.URL.EscapedPath() {
		return Request{}, fmt.Errorf("%w: path has encoded characters", ErrBadRequest)
	}
	if strings.Contains(r.URL.EscapedPath(), "%2") || strings.Contains(r.URL.EscapedPath(), "%5") {
		return Request{}, fmt.Errorf("%w: path has encoded slashes or backslashes", ErrBadRequest)
	}
	if path.Clean(p) != p {
		return Request{}, fmt.Errorf("%w: path %q is not canonical (dot segments, doubled or trailing slashes)", ErrBadRequest, p)
	}
	info, err := infoFactory.NewRequestInfo(r)
	if err != nil {
		return Request{}, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	req := Request{
		Verb:              info.Verb,
		APIGroup:          info.APIGroup,
		APIVersion:        info.APIVersion,
		Resource:          info.Resource,
		Subresource:       info.Subresource,
		Namespace:         info.Namespace,
		Name:              info.Name,
		IsResourceRequest: info.IsResourceRequest,
		Path:              p,
		Upgrade:           upgradeOf(r),
	}
	if req.IsResourceRequest && req.APIGroup == "" && req.Resource == "pods" && streamSubresources.Has(req.Subresource) {
		if req.Upgrade != NoUpgrade {
			// A WebSocket upgrade is a GET; the apiserver (1.35+) also checks
			// create for it. Policy sees one verb for both protocols.
			req.Verb = "create"
		}
		s, err := streamParams(r, req.Subresource)
		if err != nil {
			return Request{}, err
		}
		req.Stream = s
	}
	return req, nil
}

// upgradeOf reports the protocol r asks to upgrade to.
func upgradeOf(r *http.Request) Upgrade {
	if !headerHasToken(r.Header, "Connection", "upgrade") {
		return NoUpgrade
	}
	switch u := strings.ToLower(r.Header.Get("Upgrade")); {
	case u == "websocket":
		return WebSocket
	case strings.HasPrefix(u, "spdy/"):
		return SPDY
	}
	return NoUpgrade
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func streamParams(r *http.Request, sub string) (*Stream, error) {
	q := r.URL.Query()
	s := &Stream{
		Container: q.Get("container"),
		Stdin:     boolParam(q["stdin"]),
		Stdout:    boolParam(q["stdout"]),
		Stderr:    boolParam(q["stderr"]),
		TTY:       boolParam(q["tty"]),
	}
	switch sub {
	case "exec":
		s.Command = q["command"]
	case "portforward":
		for _, v := range q["ports"] {
			for _, ps := range strings.Split(v, ",") {
				n, err := strconv.ParseUint(strings.TrimSpace(ps), 10, 16)
				if err != nil || n == 0 {
					return nil, fmt.Errorf("%w: invalid port %q", ErrBadRequest, ps)
				}
				s.Ports = append(s.Ports, int32(n))
			}
		}
	}
	return s, nil
}

// boolParam parses a query flag the way the apiserver's parameter codec
// does for exec options (runtime.Convert_Slice_string_To_bool): only an
// absent flag, "0" or "false" (any case) is false; any other first value,
// even "" or "yes", is true. A stricter parse would let policy see tty=yes
// as false while the apiserver allocates a TTY.
func boolParam(vs []string) bool {
	if len(vs) == 0 {
		return false
	}
	return vs[0] != "0" && !strings.EqualFold(vs[0], "false")
}
