// Package identity turns a request's bearer token into a Principal by
// verifying it against the configured OIDC issuers.
//
// Authenticate refuses tokens in the query string, takes exactly one
// "Authorization: Bearer" header, reads the token's iss without trusting it
// only to pick the issuer, and then has that issuer's go-oidc verifier check
// it fully: an asymmetric algorithm the issuer advertises, the signature
// against the issuer's published keys, iss, aud and exp. kubegate adds its
// own checks of exp, nbf and iat with the configured clock skew, then maps
// the claims to a Principal: as configured for an OIDC issuer, or as
// kube-apiserver does for a cluster's ServiceAccount tokens.
//
// Issuers' discovery documents and key sets are fetched on first use, at
// most once a second per issuer, and again when a token names a key not yet
// seen. Until an issuer has been fetched, its tokens fail with
// ErrIssuerUnavailable, never with success. Verified tokens are remembered
// by their SHA-256 in a bounded LRU cache until they expire, for at most
// five minutes.
//
// Errors wrap the sentinels in errors.go and never contain the token or a
// claim value taken from it; nor does anything this package logs.
package identity
