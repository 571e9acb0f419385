package bench

import (
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// bulkServer is an HTTP server on a loopback port that answers every GET
// with size bytes: the test kubelet runs Pods as local processes, so a
// port-forward to this port of any Pod reaches it.
type bulkServer struct {
	port int
	srv  *http.Server
}

func startBulkServer(size int64) (*bulkServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	chunk := make([]byte, 64<<10)
	_, _ = rand.Read(chunk)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		for left := size; left > 0; {
			n, err := w.Write(chunk[:min(left, int64(len(chunk)))])
			if err != nil {
				return
			}
			left -= int64(n)
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	return &bulkServer{port: ln.Addr().(*net.TCPAddr).Port, srv: srv}, nil
}

// portForwardDialer dials a port-forward to dev/toolbox the way kubectl
// does: SPDY, or SPDY tunnelled through a WebSocket.
func portForwardDialer(cfg *rest.Config, websocket bool) (httpstream.Dialer, error) {
	u, err := url.Parse(cfg.Host)
	if err != nil {
		return nil, err
	}
	u.Path = "/api/v1/namespaces/dev/pods/toolbox/portforward"
	if websocket {
		return portforward.NewSPDYOverWebsocketDialer(u, cfg)
	}
	rt, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return nil, err
	}
	return spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, u), nil
}

// forwardOnce forwards a local port to the bulk server's port of
// dev/toolbox, downloads size bytes through one connection, and returns the
// download's rate in MiB/s (the forward's setup is not timed).
func forwardOnce(cfg *rest.Config, websocket bool, backendPort int, size int64) (float64, error) {
	dialer, err := portForwardDialer(cfg, websocket)
	if err != nil {
		return 0, err
	}
	stop, ready := make(chan struct{}), make(chan struct{})
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", backendPort)}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		return 0, err
	}
	done := make(chan error, 1)
	go func() { done <- fw.ForwardPorts() }()
	defer func() { close(stop); <-done }()
	select {
	case <-ready:
	case err := <-done:
		done <- err // for the deferred receive
		return 0, fmt.Errorf("port-forward: %w", err)
	}
	ports, err := fw.GetPorts()
	if err != nil {
		return 0, err
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true}}
	start := time.Now()
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/", ports[0].Local))
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	elapsed := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("after %d bytes: %w", n, err)
	}
	if n != size {
		return 0, fmt.Errorf("received %d bytes, want %d", n, size)
	}
	return float64(size) / (1 << 20) / elapsed.Seconds(), nil
}

// BenchmarkPortForwardThroughput downloads -stream-mib MiB over HTTP
// through one forwarded connection, over SPDY tunnelled in a WebSocket
// (kubectl's default) and over SPDY, direct, through nginx and through
// kubegate (which captures the forwarded bytes), interleaved in -rounds,
// and reports the median MiB/s of each. Run with -benchtime=1x; b.N
// multiplies the rounds.
func BenchmarkPortForwardThroughput(b *testing.B) {
	c := comparison(b)
	size := int64(*streamMiB) << 20
	backend, err := startBulkServer(size)
	if err != nil {
		b.Fatal(err)
	}
	defer backend.srv.Close()
	for _, p := range protocols {
		b.Run(p.name, func(b *testing.B) {
			samples := interleave(b, c.all(), b.N**rounds, func(t target) (float64, error) {
				return forwardOnce(t.cfg, p.websocket, backend.port, size)
			})
			reportMedians(b, c.all(), samples, "MiB/s")
		})
	}
}
