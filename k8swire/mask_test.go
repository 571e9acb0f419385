package k8swire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	jsonserializer "k8s.io/apimachinery/pkg/runtime/serializer/json"
)

// Secrets planted in the test objects; no output may contain them.
const (
	testJWT      = "eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGV2OmJvdCJ9.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"
	testAWSKey   = "AKIAIOSFODNN7EXAMPLE"
	testPassword = "hunter2-correct-horse"
	testPEM      = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw\n7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxKLxoS2tFc\nzGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW/VDL5AaWTg0nLVkjRo9z+40RQzuVaE\n-----END RSA PRIVATE KEY-----"
)

// plantedSecrets are the values that must never appear in masked output.
var plantedSecrets = []string{testJWT, testAWSKey, testPassword, "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw"}

func newTestMasker(t testing.TB, cfg MaskConfig) *Masker {
	t.Helper()
	m, err := NewMasker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// classify builds a Request the way the gateway does, from a real URL.
func classify(t testing.TB, method, url string) *Request {
	t.Helper()
	r, err := http.NewRequest(method, "https://kube.example"+url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req, err := Classify(r)
	if err != nil {
		t.Fatal(err)
	}
	return &req
}

var testJSONSerializer = jsonserializer.NewSerializerWithOptions(jsonserializer.DefaultMetaFactory, maskScheme, maskScheme, jsonserializer.SerializerOptions{})

// encodeJSON encodes obj as the apiserver's JSON serializer does.
func encodeJSON(t testing.TB, obj runtime.Object) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := testJSONSerializer.Encode(obj, &b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// encodeProto encodes obj as the apiserver's protobuf serializer does.
func encodeProto(t testing.TB, obj runtime.Object) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := maskProtobuf.Encode(obj, &b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// protoToJSON decodes a protobuf body and encodes it as JSON.
func protoToJSON(t testing.TB, b []byte) []byte {
	t.Helper()
	obj, _, err := maskProtobuf.Decode(b, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return encodeJSON(t, obj)
}

func testSecret(name string) *corev1.Secret {
	s := &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: "dev", UID: "7c4a1d2e-0000-4000-8000-000000000001", ResourceVersion: "4711",
			Labels: map[string]string{"app": "db"},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{"password": []byte(testPassword), "aws": []byte(testAWSKey), "empty": {}},
	}
	applied := *s
	applied.ResourceVersion, applied.UID = "", ""
	applied.StringData = map[string]string{"token": testJWT}
	la, _ := json.Marshal(&applied)
	s.Annotations = map[string]string{LastAppliedAnnotation: string(la), "owner": "team-db"}
	return s
}

// decodeMap decodes a JSON document into a generic map.
func decodeMap(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return m
}

// assertNoSecrets fails if b holds a planted secret, in clear or base64.
func assertNoSecrets(t testing.TB, b []byte) {
	t.Helper()
	for _, s := range plantedSecrets {
		for _, form := range []string{s, base64.StdEncoding.EncodeToString([]byte(s))} {
			if bytes.Contains(b, []byte(form)) {
				t.Errorf("output holds secret %.20q...", form)
			}
		}
	}
}

// at returns the value at a path of map keys and list indexes.
func at(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

// setAt sets the value at a path, for comparing a masked object with the
// original except at the masked fields.
func setAt(v any, val any, path ...any) {
	for i, p := range path {
		last := i == len(path)-1
		switch k := p.(type) {
		case string:
			m := v.(map[string]any)
			if last {
				m[k] = val
				return
			}
			v = m[k]
		case int:
			l := v.([]any)
			if last {
				l[k] = val
				return
			}
			v = l[k]
		}
	}
}

func TestMaskConfigValidate(t *testing.T) {
	good := []MaskConfig{
		{},
		{DefaultRules: true, DefaultPatterns: true},
		{Rules: []MaskRule{{Resource: "configmaps", Fields: []string{"data", "binaryData"}, KeyPattern: "(?i)password|token"}}},
		{Rules: []MaskRule{{Resource: "pods", Fields: []string{"spec.containers[].env[].value", "spec.initContainers[].env[].value"}, NamePattern: "(?i)pass"}}},
		{Rules: []MaskRule{{APIGroup: "apps", Resource: "deployments", Fields: []string{"spec.template.spec.containers[].env[].value"}}}},
		{Rules: []MaskRule{{APIGroup: "example.com", Resource: "widgets", Fields: []string{"spec.password", `metadata.annotations["a.b/c"]`, "metadata.annotations.x.y/z"}}}},
		{Rules: []MaskRule{{Resource: "secrets", Fields: []string{`metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]`}}}},
		{Patterns: []string{`(?i)password=(?P<mask>\S+)`}, MaxPatternLen: 64, MaxWatchEvent: 1 << 10},
	}
	for i, c := range good {
		if err := c.Validate(); err != nil {
			t.Errorf("good config #%d: %v", i, err)
		}
	}
	bad := map[string]MaskConfig{
		"bad key regexp":        {Rules: []MaskRule{{Resource: "configmaps", Fields: []string{"data"}, KeyPattern: "("}}},
		"bad name regexp":       {Rules: []MaskRule{{Resource: "pods", Fields: []string{"spec.containers[].env[].value"}, NamePattern: "[z-a]"}}},
		"bad pattern":           {Patterns: []string{"a(b"}},
		"pattern matches empty": {Patterns: []string{"x*"}},
		"pattern hits marker":   {Patterns: []string{`\*+`}},
		"no resource":           {Rules: []MaskRule{{Fields: []string{"data"}}}},
		"subresource":           {Rules: []MaskRule{{Resource: "pods/status", Fields: []string{"data"}}}},
		"no fields":             {Rules: []MaskRule{{Resource: "secrets"}}},
		"empty field":           {Rules: []MaskRule{{Resource: "secrets", Fields: []string{""}}}},
		"empty segment":         {Rules: []MaskRule{{Resource: "secrets", Fields: []string{"metadata..name"}}}},
		"trailing dot":          {Rules: []MaskRule{{Resource: "secrets", Fields: []string{"data."}}}},
		"unclosed bracket":      {Rules: []MaskRule{{Resource: "secrets", Fields: []string{`metadata.annotations["a`}}}},
		"no such field":         {Rules: []MaskRule{{Resource: "secrets", Fields: []string{"dta"}}}},
		"list without []":       {Rules: []MaskRule{{Resource: "pods", Fields: []string{"spec.containers.env[].value"}}}},
		"[] on a non-list":      {Rules: []MaskRule{{Resource: "pods", Fields: []string{"spec[].containers"}}}},
		"field of a string":     {Rules: []MaskRule{{Resource: "secrets", Fields: []string{"type.x"}}}},
		"namePattern on []":     {Rules: []MaskRule{{Resource: "pods", Fields: []string{"spec.containers[].env[]"}, NamePattern: "x"}}},
		"bad metadata field":    {Rules: []MaskRule{{APIGroup: "example.com", Resource: "widgets", Fields: []string{"metadata.anotations"}}}},
		"negative limit":        {MaxPatternLen: -1},
	}
	for name, c := range bad {
		err := c.Validate()
		if !errors.Is(err, ErrInvalidMaskConfig) {
			t.Errorf("%s: Validate() = %v, want ErrInvalidMaskConfig", name, err)
		}
		if _, err := NewMasker(c); err == nil {
			t.Errorf("%s: NewMasker succeeded", name)
		}
	}
}

func TestMaskConfigJSONTags(t *testing.T) {
	b, err := json.Marshal(MaskConfig{DefaultRules: true, Rules: []MaskRule{{Name: "n", APIGroup: "g", Resource: "r", Fields: []string{"f"}, KeyPattern: "k", NamePattern: "p"}}, DefaultPatterns: true, Patterns: []string{"x"}, MaxPatternLen: 1, MaxWatchEvent: 2})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"defaultRules":true,"rules":[{"name":"n","apiGroup":"g","resource":"r","fields":["f"],"keyPattern":"k","namePattern":"p"}],"defaultPatterns":true,"patterns":["x"],"maxPatternLen":1,"maxWatchEvent":2}`
	if string(b) != want {
		t.Errorf("JSON\n%s\nwant\n%s", b, want)
	}
	if got, _ := base64.StdEncoding.DecodeString(MaskMarkerBase64); string(got) != MaskMarker {
		t.Errorf("MaskMarkerBase64 decodes to %q", got)
	}
}

func TestMaskApplies(t *testing.T) {
	rulesOnly := newTestMasker(t, MaskConfig{DefaultRules: true, Rules: []MaskRule{{Resource: "pods", Fields: []string{"spec.containers[].env[].value"}}}})
	patternsOnly := newTestMasker(t, MaskConfig{DefaultPatterns: true})
	none := newTestMasker(t, MaskConfig{})
	cases := []struct {
		method, url          string
		rules, patterns, any bool
	}{
		{"GET", "/api/v1/namespaces/dev/secrets/db", true, true, false},
		{"GET", "/api/v1/secrets?watch=true", true, true, false},
		{"DELETE", "/api/v1/namespaces/dev/secrets", true, true, false},
		{"GET", "/api/v1/namespaces/dev/configmaps/web", false, true, false},
		{"GET", "/apis/example.com/v1/namespaces/dev/secrets/x", false, true, false},
		{"GET", "/api/v1/namespaces/dev/pods/web", true, true, false},
		{"PATCH", "/api/v1/namespaces/dev/pods/web/status", true, true, false},
		{"GET", "/api/v1/namespaces/dev/pods/web/log", false, true, false},
		{"POST", "/api/v1/namespaces/dev/pods/web/exec?command=sh&stdout=true", false, true, false},
		{"POST", "/api/v1/namespaces/dev/pods/web/attach?stdout=true", false, true, false},
		{"POST", "/api/v1/namespaces/dev/pods/web/portforward", false, false, false},
		{"GET", "/version", false, true, false},
	}
	for _, c := range cases {
		req := classify(t, c.method, c.url)
		if got := rulesOnly.Applies(req); got != c.rules {
			t.Errorf("rules: Applies(%s %s) = %v", c.method, c.url, got)
		}
		if got := patternsOnly.Applies(req); got != c.patterns {
			t.Errorf("patterns: Applies(%s %s) = %v", c.method, c.url, got)
		}
		if none.Applies(req) {
			t.Errorf("empty config: Applies(%s %s)", c.method, c.url)
		}
	}
	if !rulesOnly.Applies(nil) || none.Applies(nil) {
		t.Error("Applies(nil) should be true exactly when something is configured")
	}
}

// TestMaskedEqualsOriginalElsewhere checks that masking changes the masked
// fields only: the masked object, with the original values put back at
// those fields, decodes equal to the original.
func TestMaskedEqualsOriginalElsewhere(t *testing.T) {
	m := newTestMasker(t, MaskConfig{DefaultRules: true})
	req := classify(t, "GET", "/api/v1/namespaces/dev/secrets/db")
	body := encodeJSON(t, testSecret("db"))
	out, changed, err := m.MaskBody(req, "application/json", body)
	if err != nil || !changed {
		t.Fatalf("MaskBody: changed %v, %v", changed, err)
	}
	assertNoSecrets(t, out)
	orig, got := decodeMap(t, body), decodeMap(t, out)
	for _, k := range []string{"password", "aws", "empty"} {
		if at(got, "data", k) != MaskMarkerBase64 {
			t.Errorf("data.%s = %v", k, at(got, "data", k))
		}
		setAt(got, at(orig, "data", k), "data", k)
	}
	if at(got, "metadata", "annotations", LastAppliedAnnotation) != MaskMarker {
		t.Errorf("last-applied = %v", at(got, "metadata", "annotations", LastAppliedAnnotation))
	}
	setAt(got, at(orig, "metadata", "annotations", LastAppliedAnnotation), "metadata", "annotations", LastAppliedAnnotation)
	if !reflect.DeepEqual(orig, got) {
		t.Errorf("masked object differs beyond the masked fields:\n%s\n%s", body, out)
	}
	// Every byte outside the masked strings is the apiserver's.
	if a, b := stripStrings(body), stripStrings(out); a != b {
		t.Errorf("structure changed:\n%s\n%s", a, b)
	}
}

// stripStrings blanks the contents of JSON strings, keeping the rest.
func stripStrings(b []byte) string {
	var sb strings.Builder
	for i := 0; i < len(b); {
		if b[i] != '"' {
			sb.WriteByte(b[i])
			i++
			continue
		}
		i = stringEnd(b, i)
		sb.WriteString(`""`)
	}
	return sb.String()
}

// TestMaskerConcurrent shares one Masker between goroutines, as the
// gateway does; run with -race.
func TestMaskerConcurrent(t *testing.T) {
	m := newTestMasker(t, testConfig)
	req := classify(t, "GET", "/api/v1/namespaces/dev/secrets/db")
	jsonBody, pbBody := encodeJSON(t, testSecret("db")), encodeProto(t, testSecret("db"))
	done := make(chan error)
	for range 8 {
		go func() {
			var err error
			for range 20 {
				if _, _, err = m.MaskBody(req, "application/json", jsonBody); err != nil {
					break
				}
				if _, _, err = m.MaskBody(req, ContentTypeProtobuf, pbBody); err != nil {
					break
				}
				s := m.NewStreamMasker()
				s.Write([]byte("token " + testJWT[:50]))
				if out := append(s.Write([]byte(testJWT[50:]+"\n")), s.Flush()...); bytes.Contains(out, []byte(testJWT[60:90])) {
					err = errors.New("stream leaked")
					break
				}
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
