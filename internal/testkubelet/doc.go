// Package testkubelet is a small kubelet for tests: it registers a Node, runs
// the Pods scheduled to it as real local processes, and serves exec, attach,
// port-forward and container logs to the kube-apiserver with Kubernetes' own
// streaming server library (k8s.io/cri-streaming).
//
// It exists so that end-to-end tests and the demo have real streaming
// endpoints behind a real apiserver without a container runtime. Containers
// are not isolated: a container's command runs on this machine as the user
// running the kubelet.
package testkubelet
