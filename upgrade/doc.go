// Package upgrade relays upgraded Kubernetes streams (exec, attach,
// port-forward over SPDY/3.1 and WebSocket): it terminates the client's
// protocol, re-originates toward the apiserver, and decodes every frame so it
// can be recorded and masked.
package upgrade
