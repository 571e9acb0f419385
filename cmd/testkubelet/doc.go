// Command testkubelet is the test kubelet: it registers a Node with the
// apiserver and serves exec, attach, port-forward and logs for the Pods bound
// to it by running their commands as local processes. Tests and the demo
// start it; it is not part of kubegate.
package main
