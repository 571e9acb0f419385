// Command kubegate is the kubegate gateway and its tools: `kubegate serve`
// runs the gateway; `policy check`, `kubeconfig`, `token` and `demo` help
// operators and agents around it.
package main
