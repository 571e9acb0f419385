package identity

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// MaxTokenSize is the longest bearer token accepted, in bytes.
const MaxTokenSize = 16 << 10

// bearerToken returns the request's bearer token without looking inside it
// (checkTokenChars, on a cache miss, checks its characters).
// The query string is checked first, so a client that puts a token there
// learns why it is refused even if it also sends a header. r is only read.
func bearerToken(r *http.Request) (string, error) {
	var rawQuery string
	if r.URL != nil {
		rawQuery = r.URL.RawQuery
	}
	if err := checkQuery(rawQuery); err != nil {
		return "", err
	}
	vals := r.Header.Values("Authorization")
	switch len(vals) {
	case 0:
		return "", ErrNoToken
	case 1:
	default:
		return "", fmt.Errorf("%w: %d Authorization headers", ErrInvalidToken, len(vals))
	}
	scheme, token, _ := strings.Cut(strings.TrimSpace(vals[0]), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", ErrNoToken
	}
	token = strings.TrimLeft(token, " ")
	switch {
	case token == "":
		return "", fmt.Errorf("%w: empty bearer token", ErrInvalidToken)
	case len(token) > MaxTokenSize:
		return "", fmt.Errorf("%w: bearer token longer than %d bytes", ErrInvalidToken, MaxTokenSize)
	case rawQuery != "" && strings.Contains(rawQuery, token):
		return "", fmt.Errorf("%w: the bearer token is repeated in the query string", ErrTokenInQuery)
	}
	return token, nil
}

// checkTokenChars refuses a token with characters no compact JWT has. Only
// tokens that passed it are verified and cached, so a cached token need not
// be checked again.
func checkTokenChars(token string) error {
	if !isJWTChars(token) {
		return fmt.Errorf("%w: bearer token is not a compact JWT", ErrInvalidToken)
	}
	return nil
}

// checkQuery refuses a query string that carries a token: a parameter
// named access_token or token, or a name or value holding something shaped
// like a JWT. Both & and ; separate parameters here, so that nothing hides
// behind a separator some other parser honours.
func checkQuery(raw string) error {
	for raw != "" {
		var part string
		part, raw, _ = cutAny(raw, "&;")
		name, value, _ := strings.Cut(part, "=")
		name, value = unescape(name), unescape(value)
		if strings.EqualFold(name, "access_token") || strings.EqualFold(name, "token") {
			return fmt.Errorf("%w: parameter %q", ErrTokenInQuery, strings.ToLower(name))
		}
		if containsJWT(name) || containsJWT(value) {
			return fmt.Errorf("%w: a parameter holds a JWT", ErrTokenInQuery)
		}
	}
	return nil
}

// cutAny is strings.Cut with a set of separators.
func cutAny(s, seps string) (before, after string, found bool) {
	if i := strings.IndexAny(s, seps); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

func unescape(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// containsJWT reports whether s contains a compact JWS or JWE: three or five
// base64url segments whose first decodes to a JSON object. Every JOSE header
// starts `{"`, which is "eyJ" in base64url. Kubernetes' own continue tokens
// are base64url JSON too, but a single segment, so they do not match.
func containsJWT(s string) bool {
	for {
		i := strings.Index(s, "eyJ")
		if i < 0 {
			return false
		}
		s = s[i:]
		n := 0
		for n < len(s) && isJWTChar(s[n]) {
			n++
		}
		if isCompactJOSE(s[:n]) {
			return true
		}
		s = s[n:]
	}
}

func isCompactJOSE(s string) bool {
	if dots := strings.Count(s, "."); dots != 2 && dots != 4 {
		return false
	}
	head, _, _ := strings.Cut(s, ".")
	b, err := base64.RawURLEncoding.DecodeString(head)
	return err == nil && len(b) > 0 && b[0] == '{'
}

// isJWTChars reports whether s uses only the characters of a compact JWT:
// base64url and dots.
func isJWTChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isJWTChar(s[i]) {
			return false
		}
	}
	return true
}

func isJWTChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
}
