package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/client-go/rest"
)

// ReissueOptions configures Reissue. The zero value sends each call as
// it was recorded.
type ReissueOptions struct {
	// DryRun sends every call as a server-side dry run (dryRun=All): the
	// target admits and validates it but stores nothing. False keeps the
	// recorded dryRun parameter, if any.
	DryRun bool
	// NamespaceMap renames namespaces, recorded → target (prod → sandbox):
	// in the URL path, in a body's metadata.namespace, and a Namespace
	// object's own name. Nil keeps every namespace.
	NamespaceMap map[string]string
}

// ReissueResult is what became of one recorded mutating call.
type ReissueResult struct {
	// AuditID is the recorded call's audit id.
	AuditID string
	// Verb is the recorded Kubernetes verb.
	Verb string
	// Method is the HTTP method, and Path the path and query, that were
	// sent; for a skipped call, what was recorded.
	Method, Path string
	// Code is the target's HTTP status code; 0 if the call was skipped.
	Code int
	// Message is the message of the target's Status reply, else the
	// status text.
	Message string
	// Skipped says why the call was not sent; empty if it was.
	Skipped string
}

// mutatingMethods maps the verbs Reissue sends to their HTTP methods.
var mutatingMethods = map[string]string{
	"create":           http.MethodPost,
	"update":           http.MethodPut,
	"patch":            http.MethodPatch,
	"delete":           http.MethodDelete,
	"deletecollection": http.MethodDelete,
}

// serverOwnedFields are the metadata a target cluster assigns itself, so
// a recorded create or update body must not carry them there.
var serverOwnedFields = []string{"resourceVersion", "uid", "creationTimestamp", "managedFields"}

// reissueCall is one recorded call, planned: sent unless result.Skipped says why not.
type reissueCall struct {
	result      ReissueResult
	body        []byte
	contentType string
}

// Reissue sends the recorded mutating calls among events (create, update,
// patch, delete, deletecollection of resources) to the cluster cfg
// names, one at a time in the order given, and reports each. Reads,
// non-resource calls and streams (exec, attach, port-forward, proxy) are
// not sent; reads are left out of the report, the others reported as
// skipped, as are calls whose recorded response was not 2xx (they did not
// happen) and calls whose body was not recorded.
//
// Create and update bodies lose the metadata the target assigns itself
// (resourceVersion, uid, creationTimestamp, managedFields), and delete
// bodies their preconditions, which name the recorded cluster's object.
// A transport error stops Reissue: it returns the results so far with it.
func Reissue(ctx context.Context, cfg *rest.Config, events []*auditv1.Event, opts ReissueOptions) ([]ReissueResult, error) {
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("reissue: %w", err)
	}
	base, _, err := rest.DefaultServerUrlFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("reissue: %w", err)
	}
	prefix := strings.TrimRight(base.String(), "/")
	var out []ReissueResult
	for _, ev := range events {
		call, ok := planReissue(ev, opts)
		if !ok {
			continue
		}
		if call.result.Skipped == "" {
			if err := send(ctx, client, prefix, cfg.UserAgent, &call); err != nil {
				return out, fmt.Errorf("reissue %s %s: %w", call.result.Method, call.result.Path, err)
			}
		}
		out = append(out, call.result)
	}
	return out, nil
}

// planReissue decides what to send for ev; ok is false for a call that
// is not reported at all (a read).
func planReissue(ev *auditv1.Event, opts ReissueOptions) (call reissueCall, ok bool) {
	method, mutating := mutatingMethods[ev.Verb]
	if !mutating {
		return call, false
	}
	r := &call.result
	r.AuditID, r.Verb, r.Method, r.Path = string(ev.AuditID), ev.Verb, method, ev.RequestURI
	ref := ev.ObjectRef
	switch {
	case ref == nil:
		r.Skipped = "not a resource call"
		return call, true
	case ev.Annotations[AnnotationUpgrade] != "" || isStreamSubresource(ref):
		r.Skipped = "stream session (" + strings.Join(nonEmpty(ref.Resource, ref.Subresource), "/") + ")"
		return call, true
	case ev.ResponseStatus == nil:
		r.Skipped = "no recorded response"
		return call, true
	case ev.ResponseStatus.Code < 200 || ev.ResponseStatus.Code > 299:
		r.Skipped = fmt.Sprintf("recorded response was %d", ev.ResponseStatus.Code)
		if d := ev.Annotations[AnnotationDecision]; d != "" && d != "allow" {
			r.Skipped += fmt.Sprintf(" (%s by rule %s)", d, ev.Annotations[AnnotationRule])
		}
		return call, true
	}
	u, err := url.Parse(ev.RequestURI)
	if err != nil {
		r.Skipped = "unreadable request URI: " + err.Error()
		return call, true
	}
	call.contentType = ev.Annotations[AnnotationContentType]
	if ev.RequestObject != nil && len(ev.RequestObject.Raw) > 0 {
		if call.contentType == "" {
			if ev.Verb == "patch" {
				r.Skipped = "patch type not recorded"
				return call, true
			}
			call.contentType = "application/json"
		}
		namespaceObject := ref.APIGroup == "" && ref.Resource == "namespaces"
		if call.body, err = rewriteBody(ev.RequestObject.Raw, ev.Verb, namespaceObject, opts.NamespaceMap); err != nil {
			r.Skipped = "unreadable body: " + err.Error()
			return call, true
		}
	} else if ev.Verb != "delete" && ev.Verb != "deletecollection" { // a delete needs no body
		r.Skipped = "body not recorded"
		if why := ev.Annotations[AnnotationBodyOmit]; why != "" {
			r.Skipped += " (" + why + ")"
		}
		return call, true
	}
	r.Path = remapPath(u.EscapedPath(), opts.NamespaceMap) + query(u, opts.DryRun)
	return call, true
}

func isStreamSubresource(ref *auditv1.ObjectReference) bool {
	switch ref.Subresource {
	case "exec", "attach", "portforward", "proxy":
		return true
	}
	return false
}

// remapPath renames the namespace segment of an API path:
// /api/v1/namespaces/NS/... or /apis/GROUP/VERSION/namespaces/NS/...
func remapPath(path string, m map[string]string) string {
	if len(m) == 0 {
		return path
	}
	seg := strings.Split(path, "/")
	i := 3 // "", "api", "v1", "namespaces"
	if len(seg) > 1 && seg[1] == "apis" {
		i = 4
	}
	if len(seg) > i+1 && seg[i] == "namespaces" {
		if ns, err := url.PathUnescape(seg[i+1]); err == nil {
			if to, ok := m[ns]; ok {
				seg[i+1] = url.PathEscape(to)
			}
		}
	}
	return strings.Join(seg, "/")
}

// query returns u's "?query", with dryRun=All in place of any dryRun
// parameter if dryRun, else as it was recorded.
func query(u *url.URL, dryRun bool) string {
	q := u.RawQuery
	if dryRun {
		v := u.Query()
		v.Set("dryRun", "All")
		q = v.Encode()
	}
	if q == "" {
		return ""
	}
	return "?" + q
}

// rewriteBody fits a recorded JSON body to the target; an unchanged body
// is returned as it was, byte for byte.
func rewriteBody(raw []byte, verb string, namespaceObject bool, m map[string]string) ([]byte, error) {
	if !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) {
		return raw, nil // a JSON patch: a list of operations
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, err
	}
	changed := false
	if meta, ok := obj["metadata"].(map[string]any); ok {
		if verb == "create" || verb == "update" {
			for _, f := range serverOwnedFields {
				if _, ok := meta[f]; ok {
					delete(meta, f)
					changed = true
				}
			}
		}
		keys := []string{"namespace"}
		if namespaceObject {
			keys = append(keys, "name")
		}
		for _, k := range keys {
			if ns, ok := meta[k].(string); ok {
				if to, ok := m[ns]; ok {
					meta[k] = to
					changed = true
				}
			}
		}
	}
	if verb == "delete" || verb == "deletecollection" {
		if _, ok := obj["preconditions"]; ok {
			delete(obj, "preconditions")
			changed = true
		}
	}
	if !changed {
		return raw, nil
	}
	return json.Marshal(obj)
}

// send issues a planned call and fills in its result.
func send(ctx context.Context, client *http.Client, prefix, userAgent string, call *reissueCall) error {
	r := &call.result
	var body io.Reader
	if call.body != nil {
		body = bytes.NewReader(call.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, prefix+r.Path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if call.body != nil {
		req.Header.Set("Content-Type", call.contentType)
	}
	if userAgent == "" {
		req.Header.Set("User-Agent", "kubegate-replay")
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	r.Code = resp.StatusCode
	r.Message = statusMessage(reply)
	if r.Message == "" {
		r.Message = http.StatusText(resp.StatusCode)
	}
	return nil
}

// statusMessage returns the message of a metav1.Status reply, if it is one.
func statusMessage(reply []byte) string {
	var st struct {
		Kind    string `json:"kind"`
		Message string `json:"message"`
	}
	if json.Unmarshal(reply, &st) != nil || st.Kind != "Status" {
		return ""
	}
	return st.Message
}

// String renders r as one line: "POST /api/v1/...: 201 Created" for a
// call that was sent, "POST /api/v1/...: skipped: body not recorded" for
// one that was not.
func (r ReissueResult) String() string {
	if r.Skipped != "" {
		return r.Method + " " + r.Path + ": skipped: " + r.Skipped
	}
	return r.Method + " " + r.Path + ": " + strconv.Itoa(r.Code) + " " + r.Message
}
