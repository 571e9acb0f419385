package policy

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// podSpecPaths are where pod specs sit in the workload kinds. The check
// looks in all of them whatever the object's kind, so a patch, which names
// no kind, is checked as thoroughly as a whole object.
var podSpecPaths = [][]string{
	// Pod
	{"spec"},
	// Deployment, StatefulSet, DaemonSet, ReplicaSet,
	// ReplicationController, Job
	{"spec", "template", "spec"},
	// CronJob
	{"spec", "jobTemplate", "spec", "template", "spec"},
	// PodTemplate
	{"template", "spec"},
}

// containerLists are the pod spec fields that hold containers, and how a
// finding names one of their containers.
var containerLists = []struct{ field, noun string }{
	{"containers", "container"},
	{"initContainers", "initContainer"},
	{"ephemeralContainers", "ephemeralContainer"},
}

var hostNamespaces = []string{"hostPID", "hostIPC", "hostNetwork"}

// copied stands for a value a JSON patch copies or moves from elsewhere in
// the stored object: the engine cannot see it, so where it would land on a
// field the check looks at, it counts as a finding.
type copied struct{}

// PrivilegedReasons reports what in obj would make a privileged workload,
// in a stable order, or nil if nothing does. obj is a request body as the
// engine decodes it: a map for an object or a merge, strategic-merge or
// apply patch, a list of operations for a JSON patch, or nil.
//
// A finding is a container, initContainer or ephemeralContainer with
// securityContext.privileged true or a non-empty
// securityContext.capabilities.add; a pod spec with hostPID, hostIPC or
// hostNetwork true; or a volume with a hostPath. Pod specs are looked for
// where Pods, the workload kinds, CronJobs and PodTemplates keep them, and
// in the items of a List. Only the boolean true counts: the string "true"
// is not a privileged flag (the apiserver would refuse it).
//
// A JSON patch is checked op by op: each add or replace puts its value at
// its path in an otherwise empty object, which is then checked. A copy or
// move brings a value kubegate cannot see, so one landing on a checked
// field, or on anything containing one, is a finding.
func PrivilegedReasons(obj any) []string {
	var f finder
	f.body(obj)
	return f.reasons
}

// isPrivileged is PrivilegedReasons(obj) != nil, stopping at the first
// finding.
func isPrivileged(obj any) bool {
	f := finder{first: true}
	f.body(obj)
	return len(f.reasons) > 0
}

// finder collects findings. With first set it stops after one.
type finder struct {
	reasons []string
	first   bool
}

func (f *finder) done() bool { return f.first && len(f.reasons) > 0 }

func (f *finder) add(format string, args ...any) {
	if !f.done() {
		f.reasons = append(f.reasons, fmt.Sprintf(format, args...))
	}
}

func (f *finder) body(obj any) {
	if ops, ok := obj.([]any); ok {
		f.jsonPatch(ops)
		return
	}
	f.object("", obj)
}

// object checks an object, a partial one, or a List of them.
func (f *finder) object(where string, obj any) {
	if _, ok := obj.(copied); ok {
		f.add("%sthe whole object is copied from elsewhere", where)
		return
	}
	for _, path := range podSpecPaths {
		spec, isCopied := lookup(obj, path)
		if isCopied {
			f.add("%s%s is copied from elsewhere", where, strings.Join(path, "."))
		} else if spec != nil {
			f.podSpec(where, spec)
		}
		if f.done() {
			return
		}
	}
	items, isCopied := lookup(obj, []string{"items"})
	if isCopied {
		f.add("%sitems are copied from elsewhere", where)
		return
	}
	for _, item := range elements(items) {
		f.object(fmt.Sprintf("%sitems[%s]: ", where, truncate(item.key, 64)), item.value)
		if f.done() {
			return
		}
	}
}

func (f *finder) podSpec(where string, spec any) {
	m, ok := spec.(map[string]any)
	if !ok {
		return
	}
	for _, field := range hostNamespaces {
		switch v := m[field]; {
		case v == true:
			f.add("%spod spec sets %s: true", where, field)
		case isCopiedValue(v):
			f.add("%spod spec %s is copied from elsewhere", where, field)
		}
	}
	for _, cl := range containerLists {
		list := m[cl.field]
		if isCopiedValue(list) {
			f.add("%s%s are copied from elsewhere", where, cl.field)
			continue
		}
		for _, c := range elements(list) {
			f.container(where, containerName(cl.field, cl.noun, c), c.value)
		}
	}
	vols := m["volumes"]
	if isCopiedValue(vols) {
		f.add("%svolumes are copied from elsewhere", where)
	}
	for _, vol := range elements(vols) {
		v := vol.value
		name := fmt.Sprintf("volumes[%s]", truncate(vol.key, 64))
		if vm, ok := v.(map[string]any); ok {
			if n, ok := vm["name"].(string); ok && n != "" {
				name = fmt.Sprintf("volume %q", truncate(n, 64))
			}
		}
		switch hp, isCopied := lookup(v, []string{"hostPath"}); {
		case isCopied:
			f.add("%s%s is copied from elsewhere", where, name)
		case hp != nil:
			f.add("%s%s uses hostPath", where, name)
		}
	}
}

func (f *finder) container(where, name string, c any) {
	if priv, isCopied := lookup(c, []string{"securityContext", "privileged"}); isCopied {
		f.add("%s%s securityContext is copied from elsewhere", where, name)
		return
	} else if priv == true {
		f.add("%s%s sets securityContext.privileged: true", where, name)
	}
	add, isCopied := lookup(c, []string{"securityContext", "capabilities", "add"})
	if isCopied {
		f.add("%s%s capabilities are copied from elsewhere", where, name)
		return
	}
	if caps := elements(add); len(caps) > 0 {
		f.add("%s%s adds capabilities %s", where, name, capNames(caps))
	}
}

// jsonPatch checks each operation of a JSON patch on its own.
func (f *finder) jsonPatch(ops []any) {
	for i, op := range ops {
		m, ok := op.(map[string]any)
		if !ok {
			continue
		}
		kind, _ := m["op"].(string)
		path, ok := m["path"].(string)
		if !ok {
			continue
		}
		var value any
		switch kind {
		case "add", "replace":
			value = m["value"]
		case "copy", "move":
			value = copied{}
		default: // remove and test put nothing in place
			continue
		}
		segs, ok := parsePointer(path)
		if !ok {
			continue // the apiserver refuses the patch
		}
		sub := finder{first: f.first}
		sub.object("", materialize(segs, value))
		for _, r := range sub.reasons {
			f.add("JSON patch op %d (%s %s): %s", i, kind, truncate(path, 160), r)
		}
		if f.done() {
			return
		}
	}
}

// parsePointer splits an RFC 6901 JSON pointer into unescaped segments.
func parsePointer(p string) ([]string, bool) {
	if p == "" {
		return nil, true
	}
	if p[0] != '/' {
		return nil, false
	}
	segs := strings.Split(p[1:], "/")
	for i, s := range segs {
		segs[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
	}
	return segs, true
}

// materialize places v at path in an otherwise empty object. Every
// segment, list indexes and "-" included, becomes a map key: the checks
// read a map where they expect a list as the list of its values, so no
// index needs to be taken at its word (or allocated up to).
func materialize(path []string, v any) any {
	for i := len(path) - 1; i >= 0; i-- {
		v = map[string]any{path[i]: v}
	}
	return v
}

// lookup follows path through nested maps. It stops early, reporting
// isCopied, when it meets a value a JSON patch copied.
func lookup(v any, path []string) (value any, isCopied bool) {
	for _, p := range path {
		if isCopiedValue(v) {
			return nil, true
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		v = m[p]
	}
	return v, isCopiedValue(v)
}

func isCopiedValue(v any) bool {
	_, ok := v.(copied)
	return ok
}

// member is one element of a list, with its index (or map key) for
// findings.
type member struct {
	key   string
	value any
}

// elements returns the members of a list, or the values of a map in key
// order (a materialized JSON patch keeps list indexes as map keys).
// Anything else has no members.
func elements(v any) []member {
	switch l := v.(type) {
	case []any:
		out := make([]member, len(l))
		for i, e := range l {
			out[i] = member{strconv.Itoa(i), e}
		}
		return out
	case map[string]any:
		out := make([]member, 0, len(l))
		for _, k := range slices.Sorted(maps.Keys(l)) {
			out = append(out, member{k, l[k]})
		}
		return out
	}
	return nil
}

// containerName names a container for a finding: by its name, or by its
// place in the list when it has none (a patch may not carry it).
func containerName(field, noun string, c member) string {
	if m, ok := c.value.(map[string]any); ok {
		if n, ok := m["name"].(string); ok && n != "" {
			return fmt.Sprintf("%s %q", noun, truncate(n, 64))
		}
	}
	return fmt.Sprintf("%s[%s]", field, truncate(c.key, 64))
}

// capNames formats up to five capability names.
func capNames(caps []member) string {
	var names []string
	for _, c := range caps {
		if len(names) == 5 {
			names = append(names, "...")
			break
		}
		n, ok := c.value.(string)
		if !ok {
			n = "(not a string)"
		}
		names = append(names, truncate(n, 64))
	}
	return "[" + strings.Join(names, " ") + "]"
}

// truncate shortens a string from the request to about n bytes for a
// message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
