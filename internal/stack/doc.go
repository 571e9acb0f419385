// Package stack runs a kubegate node in front of a testenv cluster, with
// the RBAC and kubeconfigs its users need. The demo and the end-to-end
// tests share it, so both exercise the same configuration path as
// `kubegate serve --config`.
package stack
