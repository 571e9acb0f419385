package identity

import (
	"errors"
	"testing"
)

func TestCheckQuery(t *testing.T) {
	const jws = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln"
	tests := []struct {
		query string
		want  error
	}{
		{"", nil},
		{"watch=true&resourceVersion=123", nil},
		{"continue=eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTIzLCJzdGFydCI6ImEifQ", nil}, // one segment
		{"fieldSelector=metadata.name%3Dweb.a.b", nil},
		{"labelSelector=a.eyJb.c", nil}, // one dot after eyJ
		{"tokenish=1&tokens=2", nil},
		{"access_token=x", ErrTokenInQuery},
		{"ACCESS_TOKEN=x", ErrTokenInQuery},
		{"token=", ErrTokenInQuery},
		{"to%6Ben=x", ErrTokenInQuery}, // escaped name
		{"q=" + jws, ErrTokenInQuery},
		{jws, ErrTokenInQuery},
		{"a=1;b=" + jws, ErrTokenInQuery},
		{"q=Bearer%20" + jws, ErrTokenInQuery},
		{"q=" + jws + ".e30.YQ", ErrTokenInQuery}, // five parts, JWE shaped
		{"q=%zz&r=" + jws, ErrTokenInQuery},       // a bad escape hides nothing
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			err := checkQuery(tt.query)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("checkQuery = %v, want %v", err, tt.want)
			}
			if err != nil {
				checkNoLeak(t, err, jws)
			}
		})
	}
}
