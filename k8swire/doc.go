// Package k8swire understands the Kubernetes API on the wire: it classifies
// requests (verb, resource, namespace, name, subresource, exec command) and
// decodes and masks responses in JSON, Table, protobuf and watch framing.
//
// It is pure: it does no I/O of its own and reads no clock.
package k8swire
