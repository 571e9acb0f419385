package audit

import (
	"slices"
	"strconv"
	"unicode/utf8"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// appendEventJSON appends the JSON encoding of ev as it goes into the
// chain: with the annotations AnnotationAuditID = id and AnnotationAuditPrev
// = prev in place of any ev has. The bytes are exactly those json.Marshal
// gives for that chained copy (FileSink lines and their hashes depend on
// it; TestAppendEventJSON and FuzzAppendEventJSON check it against
// json.Marshal). keys is scratch space for the annotation names, returned
// for reuse.
//
// It encodes the events the gateway writes for requests without bodies.
// For an event with a part it does not encode itself (request or response
// bodies, authentication metadata, a response status with list metadata or
// details) it returns ok false and dst unchanged, and the caller uses
// encoding/json.
func appendEventJSON(dst []byte, ev *auditv1.Event, keys []string, id, prev string) (_ []byte, _ []string, ok bool) {
	if ev.AuthenticationMetadata != nil || ev.RequestObject != nil || ev.ResponseObject != nil ||
		ev.ResponseStatus != nil && (ev.ResponseStatus.ListMeta != metav1.ListMeta{} || ev.ResponseStatus.Details != nil) {
		return dst, keys, false
	}
	b := append(dst, '{')
	b = appendTypeMeta(b, &ev.TypeMeta)
	b = appendKey(b, "level")
	b = appendJSONString(b, string(ev.Level))
	b = appendKey(b, "auditID")
	b = appendJSONString(b, string(ev.AuditID))
	b = appendKey(b, "stage")
	b = appendJSONString(b, string(ev.Stage))
	b = appendKey(b, "requestURI")
	b = appendJSONString(b, ev.RequestURI)
	b = appendKey(b, "verb")
	b = appendJSONString(b, ev.Verb)
	b = appendKey(b, "user")
	b, keys = appendUserInfo(b, &ev.User, keys)
	if ev.ImpersonatedUser != nil {
		b = appendKey(b, "impersonatedUser")
		b, keys = appendUserInfo(b, ev.ImpersonatedUser, keys)
	}
	if len(ev.SourceIPs) > 0 {
		b = appendKey(b, "sourceIPs")
		b = appendStrings(b, ev.SourceIPs)
	}
	b = appendOmitEmpty(b, "userAgent", ev.UserAgent)
	if r := ev.ObjectRef; r != nil {
		b = appendKey(b, "objectRef")
		b = append(b, '{')
		b = appendOmitEmpty(b, "resource", r.Resource)
		b = appendOmitEmpty(b, "namespace", r.Namespace)
		b = appendOmitEmpty(b, "name", r.Name)
		b = appendOmitEmpty(b, "uid", string(r.UID))
		b = appendOmitEmpty(b, "apiGroup", r.APIGroup)
		b = appendOmitEmpty(b, "apiVersion", r.APIVersion)
		b = appendOmitEmpty(b, "resourceVersion", r.ResourceVersion)
		b = appendOmitEmpty(b, "subresource", r.Subresource)
		b = append(b, '}')
	}
	if st := ev.ResponseStatus; st != nil {
		b = appendKey(b, "responseStatus")
		b = append(b, '{')
		b = appendTypeMeta(b, &st.TypeMeta)
		b = appendKey(b, "metadata")
		b = append(b, '{', '}') // a struct: omitempty keeps it
		b = appendOmitEmpty(b, "status", st.Status)
		b = appendOmitEmpty(b, "message", st.Message)
		b = appendOmitEmpty(b, "reason", string(st.Reason))
		if st.Code != 0 {
			b = appendKey(b, "code")
			b = strconv.AppendInt(b, int64(st.Code), 10)
		}
		b = append(b, '}')
	}
	b = appendKey(b, "requestReceivedTimestamp")
	b = appendMicroTime(b, ev.RequestReceivedTimestamp)
	b = appendKey(b, "stageTimestamp")
	b = appendMicroTime(b, ev.StageTimestamp)

	// The chained copy always has annotations: the two of the chain, in
	// place of any the event has, and the rest, sorted as encoding/json
	// sorts map keys.
	keys = append(keys[:0], AnnotationAuditID, AnnotationAuditPrev)
	for k := range ev.Annotations {
		if k != AnnotationAuditID && k != AnnotationAuditPrev {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	b = appendKey(b, "annotations")
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		switch k {
		case AnnotationAuditID:
			b = appendJSONString(b, id)
		case AnnotationAuditPrev:
			b = appendJSONString(b, prev)
		default:
			b = appendJSONString(b, ev.Annotations[k])
		}
	}
	b = append(b, '}', '}')
	clear(keys) // hold no strings of this event
	return b, keys[:0], true
}

// appendKey appends a member's name and colon, after a comma unless the
// member is the object's first.
func appendKey(b []byte, name string) []byte {
	if b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, name...)
	return append(b, '"', ':')
}

// appendOmitEmpty appends a string member tagged omitempty.
func appendOmitEmpty(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	return appendJSONString(appendKey(b, name), v)
}

func appendTypeMeta(b []byte, t *metav1.TypeMeta) []byte {
	b = appendOmitEmpty(b, "kind", t.Kind)
	return appendOmitEmpty(b, "apiVersion", t.APIVersion)
}

func appendUserInfo(b []byte, u *authnv1.UserInfo, keys []string) ([]byte, []string) {
	b = append(b, '{')
	b = appendOmitEmpty(b, "username", u.Username)
	b = appendOmitEmpty(b, "uid", u.UID)
	if len(u.Groups) > 0 {
		b = appendKey(b, "groups")
		b = appendStrings(b, u.Groups)
	}
	if len(u.Extra) > 0 {
		b = appendKey(b, "extra")
		keys = keys[:0]
		for k := range u.Extra {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendStrings(b, u.Extra[k])
		}
		b = append(b, '}')
		clear(keys)
	}
	return append(b, '}'), keys[:0]
}

// appendStrings appends a string slice: null when nil, as encoding/json.
func appendStrings(b []byte, vs []string) []byte {
	if vs == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, v)
	}
	return append(b, ']')
}

// appendMicroTime appends t as metav1.MicroTime.MarshalJSON does.
func appendMicroTime(b []byte, t metav1.MicroTime) []byte {
	if t.IsZero() {
		return append(b, "null"...)
	}
	var buf [64]byte
	return appendJSONString(b, string(t.UTC().AppendFormat(buf[:0], metav1.RFC3339Micro)))
}

// htmlSafe[b] is true for the ASCII bytes encoding/json copies into a
// string as they are: jsonSafe but for <, > and &, which it escapes.
var htmlSafe = func() (t [utf8.RuneSelf]bool) {
	t = jsonSafe
	t['<'], t['>'], t['&'] = false, false, false
	return t
}()

// appendJSONString appends s as a JSON string exactly as encoding/json
// encodes it (with HTML escaping, as json.Marshal does): \b, \f, \n, \r
// and \t by their short escapes, other control bytes and <, > and & as
// \u00XX, each byte of invalid UTF-8 as \ufffd, and U+2028 and U+2029
// escaped.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if htmlSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
