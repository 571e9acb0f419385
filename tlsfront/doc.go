// Package tlsfront is kubegate's listener: it terminates TLS from clients,
// negotiates ALPN (h2, and http/1.1 for upgrades), reloads certificates, and
// hands each request to the gateway pipeline.
package tlsfront
