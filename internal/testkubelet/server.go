package testkubelet

import (
	"net/http"
	"time"

	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

// Streaming timeouts, as the kubelet's defaults.
const (
	streamIdleTimeout     = 4 * time.Hour
	streamCreationTimeout = remotecommand.DefaultStreamCreationTimeout
)

// Handler serves the kubelet endpoints the apiserver proxies to:
// /exec, /attach, /portForward and /containerLogs, with and without a pod uid.
func (r *Runtime) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	for _, p := range []string{"/exec/{ns}/{pod}/{container}", "/exec/{ns}/{pod}/{uid}/{container}"} {
		mux.HandleFunc(p, r.serveExec)
	}
	for _, p := range []string{"/attach/{ns}/{pod}/{container}", "/attach/{ns}/{pod}/{uid}/{container}"} {
		mux.HandleFunc(p, r.serveAttach)
	}
	for _, p := range []string{"/portForward/{ns}/{pod}", "/portForward/{ns}/{pod}/{uid}"} {
		mux.HandleFunc(p, r.servePortForward)
	}
	mux.HandleFunc("GET /containerLogs/{ns}/{pod}/{container}", func(w http.ResponseWriter, req *http.Request) {
		follow := req.URL.Query().Get("follow") == "true"
		r.ServeLogs(req.Context(), w, podKey(req.PathValue("ns"), req.PathValue("pod")), req.PathValue("container"), follow)
	})
	return mux
}

func (r *Runtime) serveExec(w http.ResponseWriter, req *http.Request) {
	opts, err := remotecommand.NewOptions(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cmd := req.URL.Query()["command"]
	remotecommand.ServeExec(w, req, r, podKey(req.PathValue("ns"), req.PathValue("pod")), req.PathValue("uid"), req.PathValue("container"),
		cmd, opts, streamIdleTimeout, streamCreationTimeout, remotecommand.SupportedStreamingProtocols)
}

func (r *Runtime) serveAttach(w http.ResponseWriter, req *http.Request) {
	opts, err := remotecommand.NewOptions(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	remotecommand.ServeAttach(w, req, r, podKey(req.PathValue("ns"), req.PathValue("pod")), req.PathValue("uid"), req.PathValue("container"),
		opts, streamIdleTimeout, streamCreationTimeout, remotecommand.SupportedStreamingProtocols)
}

func (r *Runtime) servePortForward(w http.ResponseWriter, req *http.Request) {
	opts, err := portforward.NewV4Options(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	portforward.ServePortForward(w, req, r, podKey(req.PathValue("ns"), req.PathValue("pod")), req.PathValue("uid"),
		opts, streamIdleTimeout, streamCreationTimeout, portforward.SupportedProtocols)
}
