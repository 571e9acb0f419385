package identity

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// unverified is what Authenticate reads from a token before its signature is
// checked: just enough to pick the issuer and refuse a wrong algorithm
// early. None of it is trusted; the issuer's verifier checks it all again.
type unverified struct {
	alg string // the header's alg
	iss string // the payload's iss
}

// peek parses a compact JWS without verifying it. Its errors wrap
// ErrInvalidToken and never quote the token.
func peek(token string) (unverified, error) {
	head, rest, ok := strings.Cut(token, ".")
	payload, sig, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || strings.Contains(sig, ".") {
		return unverified{}, fmt.Errorf("%w: not a compact JWS (three dot-separated parts)", ErrInvalidToken)
	}
	if head == "" || payload == "" || sig == "" {
		return unverified{}, fmt.Errorf("%w: empty JWS part", ErrInvalidToken)
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if err := decodeSegment(head, &h); err != nil {
		return unverified{}, fmt.Errorf("%w: header: %w", ErrInvalidToken, err)
	}
	var p struct {
		Iss string `json:"iss"`
	}
	if err := decodeSegment(payload, &p); err != nil {
		return unverified{}, fmt.Errorf("%w: payload: %w", ErrInvalidToken, err)
	}
	if p.Iss == "" {
		return unverified{}, fmt.Errorf("%w: no iss claim", ErrInvalidToken)
	}
	return unverified{alg: h.Alg, iss: p.Iss}, nil
}

// Segment decoding errors. They replace the decoders' own, which quote the
// offending input.
var (
	errNotBase64 = errors.New("not base64url")
	errNotJSON   = errors.New("not a JSON object with the expected fields")
)

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return errNotBase64
	}
	if err := json.Unmarshal(b, v); err != nil {
		return errNotJSON
	}
	return nil
}
