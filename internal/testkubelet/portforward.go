package testkubelet

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
)

// PortForward connects stream to 127.0.0.1:port. It implements
// portforward.PortForwarder.
func (r *Runtime) PortForward(ctx context.Context, pod, uid string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
	if err != nil {
		return fmt.Errorf("dialing port %d of pod %s: %w", port, pod, err)
	}
	tcp := conn.(*net.TCPConn)
	defer tcp.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(tcp, stream)
		_ = tcp.CloseWrite()
	}()
	_, _ = io.Copy(stream, tcp)
	// The backend finished writing; the client's half may still be open, but
	// the stream has nothing more to receive from the pod.
	<-done
	return nil
}
