package audit

import (
	"bytes"
	"encoding/json"
	"maps"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// chainedJSON is the reference for appendEventJSON: json.Marshal of a copy
// of ev carrying the chain annotations, as FileSink wrote lines before.
func chainedJSON(t testing.TB, ev *auditv1.Event, id, prev string) []byte {
	t.Helper()
	chained := *ev
	chained.Annotations = make(map[string]string, len(ev.Annotations)+2)
	maps.Copy(chained.Annotations, ev.Annotations)
	chained.Annotations[AnnotationAuditID] = id
	chained.Annotations[AnnotationAuditPrev] = prev
	b, err := json.Marshal(&chained)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkEventJSON checks appendEventJSON against the reference for ev, and
// that it declines exactly the events it says it does.
func checkEventJSON(t testing.TB, ev *auditv1.Event, id, prev string) {
	t.Helper()
	prefix := []byte("earlier line\n")
	got, keys, ok := appendEventJSON(bytes.Clone(prefix), ev, nil, id, prev)
	declines := ev.AuthenticationMetadata != nil || ev.RequestObject != nil || ev.ResponseObject != nil ||
		ev.ResponseStatus != nil && (ev.ResponseStatus.ListMeta != metav1.ListMeta{} || ev.ResponseStatus.Details != nil)
	if ok == declines {
		t.Fatalf("appendEventJSON ok = %v for an event it should %s", ok, map[bool]string{true: "decline", false: "encode"}[declines])
	}
	if len(keys) != 0 {
		t.Fatalf("scratch keys returned with length %d", len(keys))
	}
	if !ok {
		if !bytes.Equal(got, prefix) {
			t.Fatalf("declined, but changed dst: %q", got)
		}
		return
	}
	if !bytes.HasPrefix(got, prefix) {
		t.Fatalf("dst's bytes changed: %q", got)
	}
	want := chainedJSON(t, ev, id, prev)
	if got := got[len(prefix):]; !bytes.Equal(got, want) {
		t.Fatalf("appendEventJSON differs from json.Marshal:\n got %s\nwant %s", got, want)
	}
}

// oddStrings are strings whose JSON encoding has corners.
var oddStrings = []string{
	"", "plain", "<script>alert(1)</script>", "a&b>c", `quote " and \ backslash`,
	"\x00\x01\x07\b\t\n\v\f\r\x1b\x1f\x7f", "line\u2028sep\u2029para", "é 日本 🙂",
	"\xff\xfe invalid \xc3", "\xe2\x80", "\xed\xa0\x80 surrogate", "\xf4\x90\x80\x80 past U+10FFFF",
	"oidc:alice@example.com", "kubegate.dev/audit-id", "kubegate.dev/audit-prev", "\ufffd", "\u2027\u202a",
}

func TestAppendEventJSON(t *testing.T) {
	at := metav1.NewMicroTime(time.Date(2026, 11, 23, 11, 0, 0, 999999000, time.FixedZone("CET", 3600)))
	cases := map[string]*auditv1.Event{
		"bench": benchEvent(),
		"zero":  {},
		"bare":  {AuditID: "bare"},
		"chain keys": {AuditID: "forged", RequestReceivedTimestamp: at,
			Annotations: map[string]string{AnnotationAuditID: "forged:1", AnnotationAuditPrev: "x", "a": "b"}},
		"empty slices":         {User: authnv1.UserInfo{Groups: []string{}, Extra: map[string]authnv1.ExtraValue{}}, SourceIPs: []string{}},
		"extra null and empty": {User: authnv1.UserInfo{Extra: map[string]authnv1.ExtraValue{"b": nil, "a": {}, "c": {"<x>", ""}}}},
		"status": {ResponseStatus: &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
			Status: metav1.StatusFailure, Message: "no <way>", Reason: metav1.StatusReasonForbidden, Code: 403}},
		"status zero":     {ResponseStatus: &metav1.Status{}},
		"status negative": {ResponseStatus: &metav1.Status{Code: -7}},
		"object ref": {ObjectRef: &auditv1.ObjectReference{Resource: "pods", Namespace: "dev", Name: "p", UID: "u",
			APIGroup: "g", APIVersion: "v1", ResourceVersion: "1", Subresource: "exec"}},
		"empty object ref": {ObjectRef: &auditv1.ObjectReference{}, ImpersonatedUser: &authnv1.UserInfo{}},
		"far times": {RequestReceivedTimestamp: metav1.NewMicroTime(time.Date(12345, 1, 1, 0, 0, 0, 1000, time.UTC)),
			StageTimestamp: metav1.NewMicroTime(time.Date(-5, 1, 1, 0, 0, 0, 0, time.UTC))},
		// Declined: encoding/json encodes these.
		"bodies":           {RequestObject: &runtime.Unknown{Raw: []byte(`{ "a" : 1 }`), ContentType: runtime.ContentTypeJSON}},
		"response body":    {ResponseObject: &runtime.Unknown{Raw: []byte(`{}`)}},
		"authn metadata":   {AuthenticationMetadata: &auditv1.AuthenticationMetadata{ImpersonationConstraint: "x"}},
		"status details":   {ResponseStatus: &metav1.Status{Details: &metav1.StatusDetails{Name: "x"}}},
		"status list meta": {ResponseStatus: &metav1.Status{ListMeta: metav1.ListMeta{ResourceVersion: "1"}}},
	}
	for _, s := range oddStrings {
		cases["odd "+s] = &auditv1.Event{AuditID: types.UID(s), UserAgent: s, RequestURI: s,
			User:        authnv1.UserInfo{Username: s, Groups: []string{s}, Extra: map[string]authnv1.ExtraValue{s: {s}}},
			Annotations: map[string]string{s: s}}
	}
	for name, ev := range cases {
		t.Run(name, func(t *testing.T) {
			checkEventJSON(t, ev, "n1:7", "abc")
			checkEventJSON(t, ev, oddStrings[5], oddStrings[8])
		})
	}
}

// TestAppendEventJSONRandom checks appendEventJSON against json.Marshal over
// random events, every field set or not, from odd strings and random bytes.
func TestAppendEventJSONRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 23))
	for range 20000 {
		ev := randomEvent(rng)
		checkEventJSON(t, ev, randomString(rng), randomString(rng))
	}
}

func randomString(rng *rand.Rand) string {
	switch rng.IntN(4) {
	case 0:
		return oddStrings[rng.IntN(len(oddStrings))]
	case 1:
		b := make([]byte, rng.IntN(12))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return string(b)
	case 2:
		runes := []rune{'a', '<', '&', 0, 0x7f, 0x80, 0x2028, 0x2029, 0xfffd, 0x10ffff, 'é', '"', '\\'}
		var sb strings.Builder
		for range rng.IntN(8) {
			sb.WriteRune(runes[rng.IntN(len(runes))])
		}
		return sb.String()
	}
	return "plain-" + string(rune('a'+rng.IntN(26)))
}

func randomStrings(rng *rand.Rand) []string {
	switch rng.IntN(4) {
	case 0:
		return nil
	case 1:
		return []string{}
	}
	vs := make([]string, 1+rng.IntN(3))
	for i := range vs {
		vs[i] = randomString(rng)
	}
	return vs
}

func randomUser(rng *rand.Rand) authnv1.UserInfo {
	u := authnv1.UserInfo{Groups: randomStrings(rng)}
	if rng.IntN(2) == 0 {
		u.Username = randomString(rng)
	}
	if rng.IntN(2) == 0 {
		u.UID = randomString(rng)
	}
	switch rng.IntN(3) {
	case 0:
	case 1:
		u.Extra = map[string]authnv1.ExtraValue{}
	default:
		u.Extra = map[string]authnv1.ExtraValue{}
		for range 1 + rng.IntN(3) {
			u.Extra[randomString(rng)] = randomStrings(rng)
		}
	}
	return u
}

func randomTime(rng *rand.Rand) metav1.MicroTime {
	if rng.IntN(4) == 0 {
		return metav1.MicroTime{}
	}
	zones := []*time.Location{time.UTC, time.FixedZone("X", -5*3600-1800), time.Local}
	return metav1.NewMicroTime(time.Unix(rng.Int64N(1<<36)-1<<35, rng.Int64N(1e9)).In(zones[rng.IntN(len(zones))]))
}

func randomEvent(rng *rand.Rand) *auditv1.Event {
	maybe := func(s string) string {
		if rng.IntN(3) == 0 {
			return ""
		}
		return s
	}
	ev := &auditv1.Event{
		TypeMeta:                 metav1.TypeMeta{Kind: maybe("Event"), APIVersion: maybe(randomString(rng))},
		Level:                    auditv1.Level(maybe(randomString(rng))),
		AuditID:                  types.UID(maybe(randomString(rng))),
		Stage:                    auditv1.Stage(maybe(randomString(rng))),
		RequestURI:               maybe(randomString(rng)),
		Verb:                     maybe(randomString(rng)),
		User:                     randomUser(rng),
		SourceIPs:                randomStrings(rng),
		UserAgent:                maybe(randomString(rng)),
		RequestReceivedTimestamp: randomTime(rng),
		StageTimestamp:           randomTime(rng),
	}
	if rng.IntN(2) == 0 {
		u := randomUser(rng)
		ev.ImpersonatedUser = &u
	}
	if rng.IntN(2) == 0 {
		ev.ObjectRef = &auditv1.ObjectReference{Resource: maybe(randomString(rng)), Namespace: maybe(randomString(rng)),
			Name: maybe(randomString(rng)), UID: types.UID(maybe(randomString(rng))), APIGroup: maybe(randomString(rng)),
			APIVersion: maybe(randomString(rng)), ResourceVersion: maybe(randomString(rng)), Subresource: maybe(randomString(rng))}
	}
	if rng.IntN(2) == 0 {
		ev.ResponseStatus = &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: maybe("Status")}, Status: maybe(randomString(rng)),
			Message: maybe(randomString(rng)), Reason: metav1.StatusReason(maybe(randomString(rng))), Code: int32(rng.IntN(1200) - 100)}
	}
	switch rng.IntN(3) {
	case 0:
	case 1:
		ev.Annotations = map[string]string{}
	default:
		ev.Annotations = map[string]string{}
		for range 1 + rng.IntN(8) {
			ev.Annotations[randomString(rng)] = randomString(rng)
		}
	}
	switch rng.IntN(40) { // now and then an event encoding/json encodes
	case 0:
		ev.RequestObject = &runtime.Unknown{Raw: []byte(`{"a":1}`)}
	case 1:
		ev.ResponseStatus = &metav1.Status{Details: &metav1.StatusDetails{}}
	}
	return ev
}

// FuzzAppendEventJSON puts the fuzzer's strings in every string field of
// an event, and checks the encoding against json.Marshal.
func FuzzAppendEventJSON(f *testing.F) {
	for i, s := range oddStrings {
		f.Add(s, oddStrings[(i+1)%len(oddStrings)], oddStrings[(i+5)%len(oddStrings)], int64(i)<<40)
	}
	f.Fuzz(func(t *testing.T, a, b, c string, at int64) {
		ts := metav1.NewMicroTime(time.Unix(0, at))
		ev := &auditv1.Event{
			TypeMeta: metav1.TypeMeta{Kind: a, APIVersion: b}, Level: auditv1.Level(c), AuditID: types.UID(a),
			Stage: auditv1.Stage(b), RequestURI: c, Verb: a,
			User:             authnv1.UserInfo{Username: a, UID: b, Groups: []string{c, a}, Extra: map[string]authnv1.ExtraValue{a: {b}, c: nil}},
			ImpersonatedUser: &authnv1.UserInfo{Username: b, Extra: map[string]authnv1.ExtraValue{b: {}}},
			SourceIPs:        []string{b}, UserAgent: c,
			ObjectRef:                &auditv1.ObjectReference{Resource: a, Namespace: b, Name: c, UID: types.UID(a), APIGroup: b, APIVersion: c, ResourceVersion: a, Subresource: b},
			ResponseStatus:           &metav1.Status{Status: a, Message: b, Reason: metav1.StatusReason(c), Code: int32(at)},
			RequestReceivedTimestamp: ts, StageTimestamp: ts,
			Annotations: map[string]string{a: b, b: c, c: a},
		}
		checkEventJSON(t, ev, c, a)
	})
}

// TestAppendEventJSONFields pins the fields of the types appendEventJSON
// encodes by hand: a new field (a dependency update) must be encoded there
// too, or make it decline such events, before this test is updated.
func TestAppendEventJSONFields(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{auditv1.Event{}, `TypeMeta:"" Level:"level" AuditID:"auditID" Stage:"stage" RequestURI:"requestURI" Verb:"verb" User:"user" ImpersonatedUser:"impersonatedUser,omitempty" AuthenticationMetadata:"authenticationMetadata,omitempty" SourceIPs:"sourceIPs,omitempty" UserAgent:"userAgent,omitempty" ObjectRef:"objectRef,omitempty" ResponseStatus:"responseStatus,omitempty" RequestObject:"requestObject,omitempty" ResponseObject:"responseObject,omitempty" RequestReceivedTimestamp:"requestReceivedTimestamp" StageTimestamp:"stageTimestamp" Annotations:"annotations,omitempty"`},
		{metav1.TypeMeta{}, `Kind:"kind,omitempty" APIVersion:"apiVersion,omitempty"`},
		{authnv1.UserInfo{}, `Username:"username,omitempty" UID:"uid,omitempty" Groups:"groups,omitempty" Extra:"extra,omitempty"`},
		{auditv1.ObjectReference{}, `Resource:"resource,omitempty" Namespace:"namespace,omitempty" Name:"name,omitempty" UID:"uid,omitempty" APIGroup:"apiGroup,omitempty" APIVersion:"apiVersion,omitempty" ResourceVersion:"resourceVersion,omitempty" Subresource:"subresource,omitempty"`},
		{metav1.Status{}, `TypeMeta:"" ListMeta:"metadata,omitempty" Status:"status,omitempty" Message:"message,omitempty" Reason:"reason,omitempty" Details:"details,omitempty" Code:"code,omitempty"`},
	} {
		typ := reflect.TypeOf(tc.v)
		var got []string
		for f := range typ.Fields() {
			got = append(got, f.Name+":"+`"`+f.Tag.Get("json")+`"`)
		}
		if g := strings.Join(got, " "); g != tc.want {
			t.Errorf("%s fields changed:\n got %s\nwant %s", typ, g, tc.want)
		}
	}
}
