package agentcred

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// ErrNotJWT is returned for a token that is not a compact JWT whose payload
// is a JSON object with a numeric exp claim (if it has one).
var ErrNotJWT = errors.New("token is not a JWT")

// maxExp is the latest exp accepted: the end of year 9999.
const maxExp = 253402300799

// jwtExpiry returns the exp claim of a compact JWT without verifying the
// token: kubegate verifies it, the agent only needs to know when to renew.
// A token without exp gives the zero time. Errors never quote the token.
func jwtExpiry(token string) (time.Time, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, fmt.Errorf("%w: %d dot-separated parts, want 3", ErrNotJWT, len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: payload: %w", ErrNotJWT, err)
	}
	var claims struct {
		Exp *json.Number `json:"exp"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		// The JSON error may quote the payload; leave it out.
		return time.Time{}, fmt.Errorf("%w: payload is not a JSON object with a numeric exp", ErrNotJWT)
	}
	if claims.Exp == nil {
		return time.Time{}, nil
	}
	f, err := claims.Exp.Float64()
	if err != nil || math.IsNaN(f) || f <= 0 || f > maxExp {
		return time.Time{}, fmt.Errorf("%w: exp is not a time between 1970 and 9999", ErrNotJWT)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}
