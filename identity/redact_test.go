package identity

import (
	"strings"
	"testing"
)

var redactCases = []struct{ in, want string }{
	{"", ""},
	{"watch=true&resourceVersion=1", "watch=true&resourceVersion=1"},
	{"access_token=abc&watch=1", "access_token=REDACTED&watch=1"},
	{"TOKEN=abc;x=1", "TOKEN=REDACTED;x=1"},
	{"command=echo&command=" + testJWTShape, "command=echo&command=REDACTED"},
	{"command=echo&command=x%20" + testJWTShape + "%20y", "command=echo&command=REDACTED"},
	{testJWTShape + "=1&a=b", "REDACTED&a=b"},
	{"a=1&&b=2;", "a=1&&b=2;"},
	{"continue=eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ", "continue=eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ"},
}

// testJWTShape is shaped like a JWT: its header decodes to {"alg":"none"}.
const testJWTShape = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln"

func TestRedactQuery(t *testing.T) {
	for _, tc := range redactCases {
		if got := RedactQuery(tc.in); got != tc.want {
			t.Errorf("RedactQuery(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzRedactQuery: whatever the query, what RedactQuery leaves holds no
// JWT, as checkQuery finds them, and names access_token and token only
// with the value REDACTED; a query checkQuery accepts is left exactly as
// it was.
func FuzzRedactQuery(f *testing.F) {
	for _, tc := range redactCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, q string) {
		out := RedactQuery(q)
		for rest := out; rest != ""; {
			var part string
			part, rest, _ = cutAny(rest, "&;")
			name, value, _ := strings.Cut(part, "=")
			name, value = unescape(name), unescape(value)
			if containsJWT(name) || containsJWT(value) {
				t.Fatalf("RedactQuery(%q) = %q, which still holds a JWT", q, out)
			}
			if (strings.EqualFold(name, "access_token") || strings.EqualFold(name, "token")) && value != Redacted {
				t.Fatalf("RedactQuery(%q) = %q, which keeps %s", q, out, name)
			}
		}
		if checkQuery(q) == nil && out != q {
			t.Fatalf("RedactQuery changed an accepted query %q to %q", q, out)
		}
	})
}
