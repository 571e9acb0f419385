// Package testenv starts a real Kubernetes control plane on loopback for
// end-to-end tests and the demo: etcd, kube-apiserver, the test kubelet and
// Dex as the OIDC identity provider, with a freshly generated PKI.
//
// One Env is meant to be shared by all tests of a test binary (see Main);
// every process it starts is stopped by PID when it stops, and is killed by
// the kernel if the test binary dies first.
package testenv
