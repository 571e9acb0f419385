package k8swire

import (
	"errors"
	"fmt"
	"net/http"
	"path"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
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
	// Via names the proxy subresource ("nodes/proxy", "pods/proxy" or
	// "services/proxy") through which the request reaches a kubelet's or
	// an apiserver's exec, run, attach or port-forward endpoint. Such a
	// request is classified as the pods/exec, pods/attach or
	// pods/portforward it amounts to, so rules about those apply; "" for
	// every other request.
	Via string
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

// ErrMethodNotAllowed marks a request whose HTTP method the Kubernetes API
// does not serve (methods are case-sensitive: "delete" is not DELETE).
var ErrMethodNotAllowed = errors.New("method not allowed")

// methods are the HTTP methods the apiserver serves.
var methods = sets.New(http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions)

var streamSubresources = sets.New("exec", "attach", "portforward")

var infoFactory = &apirequest.RequestInfoFactory{
	APIPrefixes:          sets.NewString("api", "apis"),
	GrouplessAPIPrefixes: sets.NewString("api"),
}

// Classify describes r as a Kubernetes API request. It refuses paths the
// apiserver might route differently from how they read (dot segments,
// doubled slashes and encoded slashes), methods it does not serve,
// namespaces that cannot exist (PROD is not prod), and upgrades other than
// WebSocket and SPDY (h2c). An exec, attach or port-forward through a
// proxy subresource is classified as the stream it amounts to (see Via).
func Classify(r *http.Request) (Request, error) {
	return classifyAt(r, 0)
}

func classifyAt(r *http.Request, depth int) (Request, error) {
	if !methods.Has(r.Method) {
		return Request{}, fmt.Errorf("%w: the Kubernetes API does not serve method %q (methods are case-sensitive)", ErrMethodNotAllowed, truncate(r.Method))
	}
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
	if info.IsResourceRequest && info.Verb == "" {
		return Request{}, fmt.Errorf("%w: the Kubernetes API does not serve method %s on resources", ErrMethodNotAllowed, r.Method)
	}
	if info.Namespace != "" && len(validation.IsDNS1123Label(info.Namespace)) > 0 {
		return Request{}, fmt.Errorf("%w: %q is not a namespace name (namespaces are lower-case DNS labels)", ErrBadRequest, truncate(info.Namespace))
	}
	up, err := upgradeOf(r)
	if err != nil {
		return Request{}, err
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
		Upgrade:           up,
	}
	if pr, ok, err := proxied(r, &req, info.Parts, depth); err != nil {
		return Request{}, err
	} else if ok {
		return pr, nil
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

// upgradeOf reports the protocol r asks to upgrade to, and refuses an
// upgrade to anything but WebSocket and SPDY: h2c (HTTP/2 is offered with
// TLS ALPN) or a protocol kubegate could not inspect.
func upgradeOf(r *http.Request) (Upgrade, error) {
	if !headerHasToken(r.Header, "Connection", "upgrade") {
		return NoUpgrade, nil
	}
	switch u := strings.ToLower(r.Header.Get("Upgrade")); {
	case u == "websocket":
		return WebSocket, nil
	case strings.HasPrefix(u, "spdy/"):
		return SPDY, nil
	case u == "":
		return NoUpgrade, nil
	case strings.HasPrefix(u, "h2c"):
		return NoUpgrade, fmt.Errorf("%w: upgrading to h2c is not supported; use HTTP/2 over TLS (ALPN h2) or HTTP/1.1", ErrBadRequest)
	default:
		return NoUpgrade, fmt.Errorf("%w: upgrading to %q is not supported; kubegate relays only WebSocket and SPDY/3.1 upgrades", ErrBadRequest, truncate(u))
	}
}

// truncate shortens a client's string for an error message.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
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
		Stdin:     BoolParam(q["stdin"]),
		Stdout:    BoolParam(q["stdout"]),
		Stderr:    BoolParam(q["stderr"]),
		TTY:       BoolParam(q["tty"]),
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

// BoolParam parses a query flag the way the apiserver's parameter codec
// does for exec options (runtime.Convert_Slice_string_To_bool): only an
// absent flag, "0" or "false" (any case) is false; any other first value,
// even "" or "yes", is true. A stricter parse would let policy see tty=yes
// as false while the apiserver allocates a TTY.
func BoolParam(vs []string) bool {
	if len(vs) == 0 {
		return false
	}
	return vs[0] != "0" && !strings.EqualFold(vs[0], "false")
}
