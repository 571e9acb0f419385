package agentcred

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFileSourceRereadsTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	src := FileSource{Path: path}
	for i, exp := range []int64{1800000000, 1800003600} {
		tok := fakeJWT(t, map[string]any{"sub": "system:serviceaccount:ci:runner", "exp": exp})
		// The kubelet rotates projected tokens by replacing the file.
		if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		got, gotExp, err := src.Token(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got != tok {
			t.Errorf("read %d: token = %q, want the file's current token %q", i, got, tok)
		}
		if want := time.Unix(exp, 0); !gotExp.Equal(want) {
			t.Errorf("read %d: expiry = %v, want %v", i, gotExp, want)
		}
	}
}

func TestFileSourceErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tests := []struct {
		name    string
		path    string
		wantIs  error
		wantMsg string
	}{
		{"missing", filepath.Join(dir, "missing"), fs.ErrNotExist, "reading token file " + filepath.Join(dir, "missing") + ": "},
		{"empty", write("empty", " \n"), ErrEmptyToken, "reading token file " + filepath.Join(dir, "empty") + ": "},
		{"not a JWT", write("opaque", "opaque-"+testSignature), ErrNotJWT, "token file " + filepath.Join(dir, "opaque") + ": "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := FileSource{Path: tc.path}.Token(context.Background())
			if !errors.Is(err, tc.wantIs) {
				t.Fatalf("err = %v, want %v", err, tc.wantIs)
			}
			if !strings.HasPrefix(err.Error(), tc.wantMsg) {
				t.Errorf("err = %q, want it to start %q", err, tc.wantMsg)
			}
			if strings.Contains(err.Error(), testSignature) {
				t.Errorf("err = %q quotes the token", err)
			}
		})
	}
}
