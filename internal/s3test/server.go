package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Region is the region the server answers for.
const Region = "us-east-1"

// stopGrace is how long the server gets to exit after SIGTERM before SIGKILL.
const stopGrace = 5 * time.Second

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
	proc *process // nil while stopped
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
		s.proc.stop()
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
	p, err := startProcess(s.logPath, s.bin,
		[]string{"ROOT_ACCESS_KEY_ID=" + s.AccessKey, "ROOT_SECRET_ACCESS_KEY=" + s.SecretKey},
		"--port", s.addr, "--region", Region, "--quiet", "posix", s.dataDir)
	if err != nil {
		return err
	}
	if err := waitReady(ctx, s.Endpoint, p); err != nil {
		p.stop()
		return fmt.Errorf("%w\n%s", err, p.logTail(2048))
	}
	s.proc = p
	return nil
}

// waitReady polls the endpoint until versitygw answers (an anonymous request
// is refused, which is answer enough), p exits, or the deadline. An answer
// from another server means some other process holds the port; versitygw
// then exits for want of it.
func waitReady(ctx context.Context, endpoint string, p *process) error {
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
		case <-p.done:
			if p.err != nil {
				return fmt.Errorf("%w: %w", errExited, p.err)
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

// process is a program in its own process group, killed by the kernel if
// the thread that started it dies (Pdeathsig).
type process struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error // valid once done is closed
}

// startProcess starts bin with args and extra environment, appending its
// output to logPath.
func startProcess(logPath, bin string, env []string, args ...string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting versitygw: %w", err)
	}
	p := &process{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// stop sends SIGTERM to the process group, then SIGKILL after stopGrace,
// and waits for the process to end.
func (p *process) stop() {
	pgid := -p.cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-p.done
	}
}

// logTail returns about the last n bytes of the log, from a line start.
func (p *process) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}
