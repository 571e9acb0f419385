// Package policy decides what happens to a classified request: allow, deny,
// or hold for approval, by ordered rules with optional CEL expressions.
//
// Decisions are pure functions of the request, the principal and the rules.
//
// # Rules
//
// New compiles a Config once; Engine.Decide tries its rules in order and
// the first that matches decides. No match is a deny ("no policy rule
// allows ..."). Rule describes the matching of each field, and how rules
// for non-resource URLs are told apart from rules for resources.
//
// # Fail closed
//
// An expression that fails at evaluation (a missing key, a type error, the
// cost limit), or that yields something other than a bool, denies the
// request, naming the rule: it never falls through to a later allow. So
// does a body that a matching rule reads but that cannot be decoded.
//
// # CEL
//
// Expressions see four variables:
//
//	request    map: verb, apiGroup, apiVersion, resource, subresource,
//	           namespace, name, path, isResourceRequest (bool),
//	           upgrade ("", "websocket", "spdy") and stream, a map of
//	           container, command (list of strings), stdin, stdout,
//	           stderr, tty (bools) and ports (list of ints). stream is
//	           always present; outside exec, attach and portforward its
//	           fields are empty or false.
//	user       map: name, uid, groups (list of strings), extra (map of
//	           string to list of strings).
//	object     the decoded request body, or null when there is none: a
//	           map for an object (JSON, YAML or Kubernetes protobuf) or a
//	           merge, strategic-merge or apply patch (a partial object), a
//	           list of operations for a JSON patch. The body is decoded
//	           only when a rule that otherwise matches reads object.
//	patchType  string: "json", "merge", "strategic", "apply", or "" for a
//	           body that is no patch.
//
// and two functions beside the standard library, optional types, and the
// strings and sets extensions:
//
//	kubegate.privileged(dyn) -> bool
//	kubegate.privilegedReasons(dyn) -> list(string)
//
// which report whether, and why, an object, a partial object or a JSON
// patch would make a privileged workload (see PrivilegedReasons).
//
// For example:
//
//	request.stream.command == ["cat", "/etc/os-release"]
//	request.stream.tty && request.stream.stdin
//	"sre" in user.groups && patchType != "json"
//	object.?metadata.?labels.?team.orValue("") == "payments"
package policy
