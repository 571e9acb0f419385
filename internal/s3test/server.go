package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kubegate/kubegate/internal/testenv"
)

// Region is the region the server answers for.
const Region = "us-east-1"

// readyTimeout bounds the wait for a new server to answer when the caller's
// context has no deadline of its own.
const readyTimeout = 30 * time.Second

// Server is one versitygw process serving S3 on loopback.
type Server struct {
	// Endpoint is the server's base URL, "http://127.0.0.1:PORT". Buckets
	// are addressed path-style.
	Endpoint string
	// AccessKey and SecretKey are the root credentials, random per Server.
	AccessKey, SecretKey string

	bin, addr, dataDir, logPath string

	mu   sync.Mutex
	proc *testenv.Process // nil while stopped
}

// Start runs versitygw on a free 127.0.0.1 port with a posix backend: the
// buckets live under dir/data and the server's log is dir/versitygw.log. It
// returns once the server answers HTTP. The caller stops it with Stop
// (t.Cleanup(srv.Stop)). An error matching ErrNotBuilt means the binary is
// not in the tools cache.
func Start(ctx context.Context, dir string) (*Server, error) {
	bin, err := binary()
	if err != nil {
		return nil, err
	}
	dataDir := filepath.Join(dir, "data")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, err
	}
	s := &Server{
		AccessKey: randomString(10),
		SecretKey: randomString(20),
		bin:       bin,
		dataDir:   dataDir,
		logPath:   filepath.Join(dir, "versitygw.log"),
	}
	// A port found free may be taken before versitygw binds it; try again
	// on another one then.
	for attempt := 0; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.Endpoint = "http://" + s.addr
		err = s.start(ctx)
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, errExited) || attempt == 2 {
			return nil, err
		}
	}
}

// CreateBucket creates the bucket name.
func (s *Server) CreateBucket(ctx context.Context, name string) error {
	_, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)})
	if err != nil {
		return fmt.Errorf("creating bucket %s: %w", name, err)
	}
	return nil
}

// Client returns an S3 client for the server with its root credentials.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(s.Endpoint),
		Region:       Region,
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
}

// Stop stops the server and every process in its group: SIGTERM, then
// SIGKILL after a grace period. Stopping a stopped server does nothing, so
// it is safe in t.Cleanup after an explicit Stop or a failed test.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.Stop()
		s.proc = nil
	}
}

// Restart stops the server if it runs and starts it again on the same port
// with the same credentials and data, returning once it answers.
func (s *Server) Restart(ctx context.Context) error {
	s.Stop()
	return s.start(ctx)
}

// errExited is a server that ended before it answered.
var errExited = errors.New("versitygw exited before it answered")

// start starts the process on s.addr and waits until it answers.
func (s *Server) start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("versitygw is already running")
	}
	p, err := testenv.StartProcess(s.logPath, s.bin,
		[]string{"ROOT_ACCESS_KEY_ID=" + s.AccessKey, "ROOT_SECRET_ACCESS_KEY=" + s.SecretKey},
		"--port", s.addr, "--region", Region, "--quiet", "posix", s.dataDir)
	if err != nil {
		return err
	}
	if err := waitReady(ctx, s.Endpoint, p); err != nil {
		p.Stop()
		return fmt.Errorf("%w\n%s", err, p.LogTail(2048))
	}
	s.proc = p
	return nil
}

// waitReady polls the endpoint until versitygw answers (an anonymous request
// is refused, which is answer enough), p exits, or the deadline. An answer
// from another server means some other process holds the port; versitygw
// then exits for want of it.
func waitReady(ctx context.Context, endpoint string, p *testenv.Process) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, readyTimeout)
		defer cancel()
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.Header.Get("Server") == "VERSITYGW" {
				return nil
			}
		}
		select {
		case <-p.Done():
			if err := p.Err(); err != nil {
				return fmt.Errorf("%w: %w", errExited, err)
			}
			return errExited
		case <-ctx.Done():
			return fmt.Errorf("waiting for versitygw on %s: %w", endpoint, ctx.Err())
		case <-tick.C:
		}
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// randomString returns n random bytes, hex-encoded.
func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails
	return hex.EncodeToString(b)
}

// StartT starts a server for the test t in a temporary directory, skips t
// where versitygw is not built (with how to build it), fails it on any
// other error, and stops the server when t ends.
func StartT(t testing.TB, ctx context.Context) *Server {
	t.Helper()
	srv, err := Start(ctx, t.TempDir())
	if errors.Is(err, ErrNotBuilt) {
		t.Skipf("no S3 server to test against: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv
}
