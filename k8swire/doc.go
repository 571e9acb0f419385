// Package k8swire understands the Kubernetes API on the wire: it classifies
// requests (verb, resource, namespace, name, subresource, exec command) and
// decodes and masks responses in JSON, Table, protobuf (at the wire level,
// checked against a decode-mask-encode reference), YAML, and watch events
// (HTTP watch streams and the messages of WebSocket watches).
//
// It is pure: it does no I/O of its own and reads no clock.
package k8swire
