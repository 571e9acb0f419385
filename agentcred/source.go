package agentcred

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Source yields the bearer token an agent presents to kubegate.
type Source interface {
	// Token returns a token and when it expires. A zero expiry means the
	// token carries none.
	Token(ctx context.Context) (token string, expiry time.Time, err error)
}

var (
	_ Source = FileSource{}
	_ Source = (*OIDCPassword)(nil)
)

// ErrEmptyToken is returned when a token file holds nothing but white space.
var ErrEmptyToken = errors.New("empty token")

// FileSource reads the token from a file on every call, such as a projected
// ServiceAccount token, which the kubelet rotates in place. It keeps no
// cache, so a rotated token is used as soon as it is written.
type FileSource struct {
	// Path is the token file. It must be set.
	Path string
}

// Token reads the file and returns its token, trimmed of white space, with
// the token's exp claim as the expiry.
func (s FileSource) Token(ctx context.Context) (string, time.Time, error) {
	b, err := os.ReadFile(s.Path)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("reading token file %s: %w", s.Path, err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", time.Time{}, fmt.Errorf("reading token file %s: %w", s.Path, ErrEmptyToken)
	}
	exp, err := jwtExpiry(tok)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("token file %s: %w", s.Path, err)
	}
	return tok, exp, nil
}
