package testenv

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
)

// PeerCA issues certificates for kubegate's node-to-node (Raft) mutual TLS.
// Each PeerCA is a CA of its own, so a test can make certificates that
// another cluster's CA never signed.
type PeerCA struct {
	ca  *CA
	dir string
	// CAFile is the CA certificate, for cluster.tls.caFile.
	CAFile string
}

// NewPeerCA creates a CA and writes its certificate to DIR/ca.crt.
func NewPeerCA(dir, name string) (*PeerCA, error) {
	ca, err := newCA(name)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o600); err != nil {
		return nil, err
	}
	return &PeerCA{ca: ca, dir: dir, CAFile: caFile}, nil
}

// Issue writes a certificate for node, valid for both ends of a TLS
// connection, for 127.0.0.1, localhost and the node's name.
func (p *PeerCA) Issue(node string) (certFile, keyFile string, err error) {
	certFile, keyFile, err = p.ca.writeIssued(p.dir, node, certSpec{
		cn: node, server: true, client: true,
		ips: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}, dns: []string{"localhost", node},
	})
	if err != nil {
		return "", "", fmt.Errorf("peer certificate for %s: %w", node, err)
	}
	return certFile, keyFile, nil
}
