package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	jose "github.com/go-jose/go-jose/v4"
)

// maxKeySetSize bounds the JSON Web Key Set read from an issuer.
const maxKeySetSize = 1 << 20

// fetchKeys fetches a JSON Web Key Set and keeps its public signing keys:
// RSA, ECDSA and Ed25519. Keys marked for another use, symmetric keys and
// keys go-jose cannot parse are skipped, as RFC 7517 section 5 asks.
func fetchKeys(ctx context.Context, client *http.Client, jwksURL string) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, jwksURL, nil)
	if err != nil {
		return nil, fmt.Errorf("key set: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json") // kube-apiserver answers 406 to application/json alone
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("key set: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("key set: %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxKeySetSize+1))
	if err != nil {
		return nil, fmt.Errorf("key set: %w", err)
	}
	if len(body) > maxKeySetSize {
		return nil, fmt.Errorf("key set: larger than %d bytes", maxKeySetSize)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("key set: %w", err)
	}
	var keys []jose.JSONWebKey
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if json.Unmarshal(raw, &k) != nil || (k.Use != "" && k.Use != "sig") {
			continue
		}
		k = k.Public() // a private key published by mistake still verifies as its public half
		switch k.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
			if k.Valid() {
				keys = append(keys, k)
			}
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("key set: no usable signing keys")
	}
	return keys, nil
}

// verifySignature checks jws against the issuer's keys. If no key has the
// token's key ID (or the token names none), the key set is fetched again,
// at most once per minRefreshInterval, in case the issuer rotated its keys;
// a bad signature under a known key never causes a fetch.
func (is *issuer) verifySignature(ctx context.Context, jws *jose.JSONWebSignature) ([]byte, error) {
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("%w: issuer %q: want exactly one signature", ErrInvalidToken, is.cfg.Name)
	}
	h := jws.Signatures[0].Header
	keys, _ := is.snapshot()
	payload, known := verifyWith(jws, keys, h.KeyID, h.Algorithm)
	if payload != nil {
		return payload, nil
	}
	if known {
		return nil, fmt.Errorf("%w: issuer %q: signature does not verify", ErrInvalidToken, is.cfg.Name)
	}
	if err := is.refresh(ctx); err != nil {
		return nil, err
	}
	keys, _ = is.snapshot()
	if payload, known = verifyWith(jws, keys, h.KeyID, h.Algorithm); payload != nil {
		return payload, nil
	}
	if known {
		return nil, fmt.Errorf("%w: issuer %q: signature does not verify", ErrInvalidToken, is.cfg.Name)
	}
	return nil, fmt.Errorf("%w: issuer %q: no key verifies the signature", ErrInvalidToken, is.cfg.Name)
}

// verifyWith tries the keys that match kid (all of them if kid is empty) and
// whose declared alg, if any, is alg. known reports whether kid named one of
// the keys.
func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey, kid, alg string) (payload []byte, known bool) {
	for i := range keys {
		k := &keys[i]
		if kid != "" && k.KeyID != kid {
			continue
		}
		if kid != "" {
			known = true
		}
		if k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		if p, err := jws.Verify(k.Key); err == nil {
			return p, true
		}
	}
	return nil, known
}

// sigCheck is the oidc.KeySet for one verification. go-oidc flattens a
// KeySet's error with %v, losing whether the issuer was unreachable or the
// signature bad; sigCheck keeps it, and the verified payload, for the caller.
type sigCheck struct {
	is      *issuer
	algs    []jose.SignatureAlgorithm
	called  bool
	err     error
	payload []byte
}

// VerifySignature implements oidc.KeySet.
func (s *sigCheck) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	s.called = true
	jws, err := jose.ParseSignedCompact(raw, s.algs)
	if err != nil {
		s.err = fmt.Errorf("%w: issuer %q: malformed JWS or algorithm not allowed", ErrInvalidToken, s.is.cfg.Name)
		return nil, s.err
	}
	s.payload, s.err = s.is.verifySignature(ctx, jws)
	return s.payload, s.err
}
