package raftnode

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
)

// errNoPeerCert is a handshake without the peer's certificate; the TLS
// configurations below demand one, so it is a bug if it shows.
var errNoPeerCert = errors.New("peer presented no certificate")

// peerTLS returns the TLS configurations a node accepts (server) and
// dials (client) with, made from Config.TLS (base, not changed) and
// Config.PeerNames. Both use TLS 1.3 only and demand a certificate from the
// cluster CA; see Config.TLS.
func peerTLS(base *tls.Config, names []string) (server, client *tls.Config) {
	clientCAs, roots := base.ClientCAs, base.RootCAs
	if clientCAs == nil {
		clientCAs = roots
	}
	if roots == nil {
		roots = clientCAs
	}
	name := base.ServerName

	server = base.Clone()
	server.GetConfigForClient = nil // it would replace all of this
	server.MinVersion = tls.VersionTLS13
	server.ClientAuth = tls.RequireAndVerifyClientCert
	server.ClientCAs = clientCAs
	server.VerifyConnection = func(cs tls.ConnectionState) error {
		// The library has verified the chain, for client authentication.
		if len(cs.PeerCertificates) == 0 {
			return errNoPeerCert
		}
		if name != "" {
			if err := cs.PeerCertificates[0].VerifyHostname(name); err != nil {
				return fmt.Errorf("peer certificate: %w", err)
			}
		}
		return checkPeerNames(cs, names, base.VerifyConnection)
	}

	client = base.Clone()
	client.MinVersion = tls.VersionTLS13
	// The chain is verified in VerifyConnection, against the cluster CA
	// and for ServerName only when that is set: the address dialled need
	// not be in the peer's certificate.
	client.InsecureSkipVerify = true
	client.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := verifyChain(cs, roots, name); err != nil {
			return err
		}
		return checkPeerNames(cs, names, base.VerifyConnection)
	}
	return server, client
}

// verifyChain verifies the server certificate of cs against roots, for
// the name dnsName when that is not empty.
func verifyChain(cs tls.ConnectionState, roots *x509.CertPool, dnsName string) error {
	if len(cs.PeerCertificates) == 0 {
		return errNoPeerCert
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		DNSName:       dnsName,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("verifying peer certificate: %w", err)
	}
	return nil
}

// checkPeerNames checks the peer's leaf certificate against names (see
// Config.PeerNames), then runs the caller's own check, if any.
func checkPeerNames(cs tls.ConnectionState, names []string, next func(tls.ConnectionState) error) error {
	if len(names) > 0 {
		leaf := cs.PeerCertificates[0]
		ok := leaf.Subject.CommonName != "" && slices.Contains(names, leaf.Subject.CommonName)
		for _, n := range leaf.DNSNames {
			ok = ok || slices.Contains(names, n)
		}
		if !ok {
			return fmt.Errorf("peer certificate (CN %q, DNS names %q) names none of the allowed peers", leaf.Subject.CommonName, leaf.DNSNames)
		}
	}
	if next != nil {
		return next(cs)
	}
	return nil
}
