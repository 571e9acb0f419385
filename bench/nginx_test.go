package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/kubegate/kubegate/internal/stack"
	"github.com/kubegate/kubegate/internal/testenv"
	"k8s.io/client-go/rest"
)

// nginxProxy is Debian's nginx as a plain TLS-terminating reverse proxy in
// front of the apiserver: the no-features baseline. It authenticates to the
// apiserver as the admin (client certificate), so its clients present no
// credential at all.
type nginxProxy struct {
	// URL is nginx's https URL; the Env's CA signs its certificate.
	URL string
	// Config reaches the cluster through nginx: no credential, trusting the
	// Env's CA.
	Config *rest.Config

	dir    string
	cmd    *exec.Cmd
	exited chan struct{}
}

// nginxConf is the proxy's whole configuration: HTTP/2 or HTTP/1.1 to the
// clients, HTTP/1.1 with keepalive to the apiserver, upgrades (exec, attach,
// port-forward over SPDY or WebSocket) passed on, no buffering (watches,
// logs -f), no access log.
var nginxConf = template.Must(template.New("nginx.conf").Parse(`# written by kubegate's bench/nginx_test.go
{{if .User}}user {{.User}};
{{end}}worker_processes auto;
worker_rlimit_nofile 20000;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/error.log warn;

events {
	worker_connections 16384;
}

http {
	access_log off;
	client_body_temp_path {{.Dir}}/tmp/client_body;
	proxy_temp_path {{.Dir}}/tmp/proxy;
	fastcgi_temp_path {{.Dir}}/tmp/fastcgi;
	uwsgi_temp_path {{.Dir}}/tmp/uwsgi;
	scgi_temp_path {{.Dir}}/tmp/scgi;

	map $http_upgrade $connection_upgrade {
		default upgrade;
		''      '';
	}

	upstream apiserver {
		server {{.Upstream}};
		keepalive 128;
		keepalive_requests 1000000;
		keepalive_timeout 300s;
	}

	server {
		listen {{.Listen}} ssl http2;
		ssl_certificate {{.CertFile}};
		ssl_certificate_key {{.KeyFile}};
		ssl_protocols TLSv1.2 TLSv1.3;
		keepalive_requests 1000000;
		keepalive_timeout 300s;
		client_max_body_size 0;

		location / {
			proxy_pass https://apiserver;
			proxy_http_version 1.1;
			proxy_set_header Upgrade $http_upgrade;
			proxy_set_header Connection $connection_upgrade;
			proxy_buffering off;
			proxy_request_buffering off;
			proxy_read_timeout 1h;
			proxy_send_timeout 1h;
			proxy_ssl_certificate {{.ClientCert}};
			proxy_ssl_certificate_key {{.ClientKey}};
			proxy_ssl_trusted_certificate {{.CAFile}};
			proxy_ssl_verify on;
			proxy_ssl_name localhost;
			proxy_ssl_session_reuse on;
		}
	}
}
`))

// startNginx writes nginx.conf into dir and runs `nginx -p DIR -c
// nginx.conf -g 'daemon off;'` as a child process (in its own process group,
// killed by the kernel if this process dies) until stop, and waits until
// nginx answers /readyz from the apiserver.
func startNginx(ctx context.Context, env *testenv.Env, dir string) (*nginxProxy, error) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		return nil, fmt.Errorf("nginx is not installed (make bench installs Debian's package): %w", err)
	}
	for _, d := range []string{"tmp/client_body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	certFile, keyFile, err := env.IssueServingCert("nginx")
	if err != nil {
		return nil, err
	}
	upstream, err := url.Parse(env.APIServerURL)
	if err != nil {
		return nil, err
	}
	admin := env.RESTConfig.TLSClientConfig
	if admin.CertFile == "" || admin.KeyFile == "" {
		return nil, errors.New("the admin kubeconfig names no client certificate file")
	}
	params := struct {
		User, Dir, Listen, Upstream, CertFile, KeyFile, ClientCert, ClientKey, CAFile string
	}{Dir: dir, Listen: stack.FreeAddr(), Upstream: upstream.Host, CertFile: certFile, KeyFile: keyFile,
		ClientCert: admin.CertFile, ClientKey: admin.KeyFile, CAFile: env.CAFile}
	if os.Geteuid() == 0 {
		// As root, nginx's workers would switch to nobody, who cannot
		// write the temp directories here.
		if u, err := user.Current(); err == nil {
			params.User = u.Username
		}
	}
	var conf strings.Builder
	if err := nginxConf.Execute(&conf, params); err != nil {
		return nil, err
	}
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "nginx.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", confPath, "-g", "daemon off;")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting nginx: %w", err)
	}
	n := &nginxProxy{URL: "https://" + params.Listen, dir: dir, cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(n.exited)
	}()
	n.Config = &rest.Config{Host: n.URL, TLSClientConfig: rest.TLSClientConfig{CAFile: env.CAFile}}
	if err := n.waitReady(ctx, env); err != nil {
		n.stop()
		return nil, fmt.Errorf("%w (nginx's log: %s)", err, filepath.Join(dir, "error.log"))
	}
	return n, nil
}

// waitReady polls nginx until the apiserver's /readyz answers through it.
func (n *nginxProxy) waitReady(ctx context.Context, env *testenv.Env) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(env.CAPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.URL+"/readyz", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /readyz through nginx: %s", resp.Status)
		}
		last = err
		select {
		case <-n.exited:
			return fmt.Errorf("nginx exited: %w", last)
		case <-ctx.Done():
			return fmt.Errorf("nginx never answered: %w", last)
		case <-tick.C:
		}
	}
}

// pids lists nginx's master and worker processes.
func (n *nginxProxy) pids() ([]int, error) {
	master := n.cmd.Process.Pid
	workers, err := childrenOf(master, "nginx")
	if err != nil {
		return nil, err
	}
	if len(workers) == 0 {
		return nil, errors.New("nginx has no worker process")
	}
	return append([]int{master}, workers...), nil
}

// stop ends nginx's process group: SIGTERM (a fast shutdown), then SIGKILL
// if it has not exited after a few seconds.
func (n *nginxProxy) stop() {
	pgid := -n.cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-n.exited
	}
}
