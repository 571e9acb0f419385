// Package oidctest runs an in-process OIDC issuer over real TLS for tests:
// discovery, a JWKS and a token endpoint that implements the resource-owner
// password grant, issuing RS256 ID tokens on a clock the test controls.
package oidctest
