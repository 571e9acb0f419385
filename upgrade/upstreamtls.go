package upgrade

import (
	"crypto/tls"
	"fmt"

	"k8s.io/client-go/rest"
)

// upstreamSessionCacheSize bounds the TLS sessions UpstreamTLS keeps: one
// per apiserver address, so a handful are plenty.
const upstreamSessionCacheSize = 64

// UpstreamTLS builds, once, the TLS configuration that exec and attach
// sessions dial the apiserver with (RemoteCommandConfig.TLS), from
// kubegate's own credential in cfg.
//
// Every session dials a new connection. Built per session, the
// configuration parsed the client key pair again each time and forgot the
// apiserver's session tickets, so every dial was a full handshake:
// certificate chain verified, client certificate signed. Shared, its
// session cache lets later dials resume. Impersonation travels in each
// request's headers, so sessions of different users share it safely: the
// TLS identity is kubegate's own in every case. A client certificate from
// files is still reloaded when the files change (client-go's loader checks
// them at each handshake); CA files are read once, as for kubegate's
// other apiserver requests.
func UpstreamTLS(cfg *rest.Config) (*tls.Config, error) {
	tc, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("building the apiserver TLS config: %w", err)
	}
	if tc == nil {
		// No TLS settings: the system's roots, as client-go would use.
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tc.ClientSessionCache = tls.NewLRUClientSessionCache(upstreamSessionCacheSize)
	return tc, nil
}
