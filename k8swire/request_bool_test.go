package k8swire

import (
	"net/http/httptest"
	"testing"
)

// TestClassifyStreamFlagsAsTheAPIServer checks that exec flags parse as the
// apiserver's parameter codec parses them: policy must see the TTY the
// apiserver will allocate.
func TestClassifyStreamFlagsAsTheAPIServer(t *testing.T) {
	cases := []struct {
		query string
		tty   bool
	}{
		{"", false},
		{"tty=false", false},
		{"tty=FALSE", false},
		{"tty=0", false},
		{"tty=true", true},
		{"tty=1", true},
		{"tty=yes", true},
		{"tty=on", true},
		{"tty=", true},
		{"tty", true},
		{"tty=2", true},
		{"tty=false&tty=true", false},
		{"tty=yes&tty=false", true},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/api/v1/namespaces/prod/pods/toolbox/exec?command=cat&"+tc.query, nil)
			req, err := Classify(r)
			if err != nil {
				t.Fatal(err)
			}
			if req.Stream == nil || req.Stream.TTY != tc.tty {
				t.Errorf("tty = %v, want %v (the apiserver's reading)", req.Stream != nil && req.Stream.TTY, tc.tty)
			}
		})
	}
}
