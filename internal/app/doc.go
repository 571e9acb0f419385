// Package app assembles a kubegate node from its YAML configuration: the
// identity providers, policy engine, audit sink, gateway pipeline, TLS
// listener and admin endpoints. cmd/kubegate and the end-to-end tests both
// run a node through it.
package app
