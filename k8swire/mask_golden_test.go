package k8swire

import (
	"bytes"
	"embed"
	"strings"
	"testing"
)

// goldenFS holds inputs as the apiserver or a shell in a pod writes them,
// and next to each, NAME.masked.EXT, what the masker must make of them.
//
//go:embed testdata/mask
var goldenFS embed.FS

// goldenConfig masks Secrets, env values whose names say secret, and the
// default patterns.
var goldenConfig = MaskConfig{
	DefaultRules: true, DefaultPatterns: true,
	Rules: []MaskRule{{Name: "env", Resource: "pods", Fields: []string{"spec.containers[].env[].value"}, NamePattern: "(?i)password|token|secret|key"}},
}

// maskGolden masks a golden input: a response body to the URL, or, with no
// URL, exec output sent through a StreamMasker in 17-byte writes.
func maskGolden(t *testing.T, m *Masker, url string, in []byte) []byte {
	t.Helper()
	if url == "" {
		s := m.NewStreamMasker()
		var out []byte
		for len(in) > 0 {
			n := min(17, len(in))
			out = append(out, s.Write(in[:n])...)
			in = in[n:]
		}
		return append(out, s.Flush()...)
	}
	out, _, err := m.MaskBody(classify(t, "GET", url), "application/json", in)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestMaskGolden(t *testing.T) {
	m := newTestMasker(t, goldenConfig)
	for _, c := range []struct{ file, url string }{
		{"secret-pretty.json", "/api/v1/namespaces/prod/secrets/db?pretty=true"},
		{"pod-list.json", "/api/v1/namespaces/prod/pods"},
		{"exec-session.txt", ""},
	} {
		t.Run(c.file, func(t *testing.T) {
			in, err := goldenFS.ReadFile("testdata/mask/" + c.file)
			if err != nil {
				t.Fatal(err)
			}
			dot := strings.LastIndex(c.file, ".")
			want, err := goldenFS.ReadFile("testdata/mask/" + c.file[:dot] + ".masked" + c.file[dot:])
			if err != nil {
				t.Fatal(err)
			}
			got := maskGolden(t, m, c.url, in)
			if !bytes.Equal(got, want) {
				t.Errorf("masked %s:\n%s\nwant:\n%s", c.file, got, want)
			}
			for _, secret := range []string{"s3cr3t-Passw0rd!", "czNjcjN0LVBhc3N3MHJkIQ==", "MHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oaOaRJ0B3ZpGoAoGCCqGSM49", "AKIAIOSFODNN7EXAMPLE", "3f9a1c7e5b2d4f608a1c3e5b7d9f0a2c", "ghp_abcdefghijklmnopqrstuvwxyz0123", "Zm9vYmFyYmF6cXV4"} {
				if bytes.Contains(got, []byte(secret)) {
					t.Errorf("%s leaks %q", c.file, secret)
				}
			}
		})
	}
}
