package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Options configure Start.
type Options struct {
	// Dir holds the cluster's files (PKI, kubeconfigs, data, logs). Empty
	// means a new temporary directory, removed by Stop.
	Dir string
	// Progress receives one line per step. Nil means io.Discard.
	Progress io.Writer
}

// Env is a running test cluster.
type Env struct {
	// Dir holds the cluster's files.
	Dir string
	// AdminKubeconfig is a kubeconfig for the apiserver as a cluster admin
	// (group system:masters), direct, not through kubegate.
	AdminKubeconfig string
	// CAFile is the PEM CA that signs every serving certificate here
	// (apiserver, kubelet, Dex) and the admin client certificate.
	CAFile string
	// CAPEM is the content of CAFile.
	CAPEM []byte
	// APIServerURL is the apiserver's https URL.
	APIServerURL string
	// ServiceAccountIssuer is the issuer of service-account tokens, served
	// with OIDC discovery by the apiserver.
	ServiceAccountIssuer string
	// Dex is the OIDC identity provider.
	Dex *Dex
	// Namespaces are the namespaces created for tests, besides default.
	Namespaces []string
	// Pods are the Pods created in each of Namespaces, Running on the test
	// kubelet. Pod "toolbox" runs an echo loop on stdin ("got: LINE").
	Pods []string

	// RESTConfig is AdminKubeconfig loaded.
	RESTConfig *rest.Config
	// Client is a clientset for RESTConfig.
	Client kubernetes.Interface

	ca       *CA
	tempDir  bool
	progress io.Writer
	mu       sync.Mutex
	procs    []*process
	hygiene  hygiene
}

// The namespaces and pods every Env has.
var (
	defaultNamespaces = []string{"dev", "prod"}
	defaultPods       = []string{"toolbox"}
)

// Start brings up etcd, kube-apiserver, the test kubelet and Dex on free
// loopback ports and prepares the cluster. On error everything started is
// stopped again.
func Start(ctx context.Context, opts Options) (env *Env, err error) {
	e := &Env{Dir: opts.Dir, progress: opts.Progress, Namespaces: defaultNamespaces, Pods: defaultPods}
	if e.progress == nil {
		e.progress = io.Discard
	}
	if e.Dir == "" {
		if e.Dir, err = os.MkdirTemp("", "kubegate-testenv-"); err != nil {
			return nil, err
		}
		e.tempDir = true
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w%s", err, e.logTails())
			e.Stop()
		}
	}()
	start := time.Now()
	for _, d := range []string{"pki", "logs", "etcd", "kubelet", "bin"} {
		if err := os.MkdirAll(filepath.Join(e.Dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	bins, err := findBinaries(e.Dir)
	if err != nil {
		return nil, err
	}
	e.step("binaries ready (%s)", time.Since(start).Round(time.Millisecond))
	p, err := e.writePKI()
	if err != nil {
		return nil, fmt.Errorf("writing PKI: %w", err)
	}
	dexDone := make(chan error, 1)
	go func() { dexDone <- e.startDex(ctx, bins.dex, p) }()
	if err := e.startControlPlane(ctx, bins, p); err != nil {
		return nil, err
	}
	e.step("apiserver ready at %s (%s)", e.APIServerURL, time.Since(start).Round(time.Millisecond))
	if err := e.startKubelet(bins.kubelet, p); err != nil {
		return nil, err
	}
	if err := e.seed(ctx); err != nil {
		return nil, fmt.Errorf("seeding cluster: %w", err)
	}
	if err := <-dexDone; err != nil {
		return nil, err
	}
	e.step("cluster ready: pods running, dex at %s (%s)", e.Dex.Issuer, time.Since(start).Round(time.Millisecond))
	e.mu.Lock()
	err = writePIDFile(filepath.Join(e.Dir, "pids"), e.procs)
	e.mu.Unlock()
	return e, err
}

func (e *Env) step(format string, args ...any) {
	fmt.Fprintf(e.progress, "[testenv] "+format+"\n", args...)
}

// pki holds the files of the harness's PKI.
type pki struct {
	ca                                  *CA
	caFile                              string
	apiserverCert, apiserverKey         string
	adminCert, adminKey                 string
	kubeletClientCert, kubeletClientKey string
	kubeletCert, kubeletKey             string
	dexCert, dexKey                     string
	saKey, saPub                        string
}

func (e *Env) writePKI() (*pki, error) {
	dir := filepath.Join(e.Dir, "pki")
	ca, err := newCA("kubegate-testenv-ca")
	if err != nil {
		return nil, err
	}
	p := &pki{ca: ca, caFile: filepath.Join(dir, "ca.crt")}
	if err := os.WriteFile(p.caFile, ca.CertPEM, 0o644); err != nil {
		return nil, err
	}
	loopback := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}
	steps := []struct {
		name      string
		spec      certSpec
		cert, key *string
	}{
		{"apiserver", certSpec{cn: "kube-apiserver", server: true, ips: append(loopback, net.ParseIP("10.0.0.1")),
			dns: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}}, &p.apiserverCert, &p.apiserverKey},
		{"admin", certSpec{cn: "kubernetes-admin", orgs: []string{"system:masters"}, client: true}, &p.adminCert, &p.adminKey},
		{"apiserver-kubelet-client", certSpec{cn: "kube-apiserver-kubelet-client", orgs: []string{"system:masters"}, client: true}, &p.kubeletClientCert, &p.kubeletClientKey},
		{"kubelet", certSpec{cn: "system:node:testnode", server: true, ips: loopback, dns: []string{"localhost", "testnode"}}, &p.kubeletCert, &p.kubeletKey},
		{"dex", certSpec{cn: "dex", server: true, ips: loopback, dns: []string{"localhost"}}, &p.dexCert, &p.dexKey},
	}
	for _, s := range steps {
		if *s.cert, *s.key, err = ca.writeIssued(dir, s.name, s.spec); err != nil {
			return nil, err
		}
	}
	if p.saKey, p.saPub, err = writeRSAKeyPair(dir, "sa"); err != nil {
		return nil, err
	}
	e.CAFile, e.CAPEM, e.ca = p.caFile, ca.CertPEM, ca
	return p, nil
}

func (e *Env) startControlPlane(ctx context.Context, bins binaries, p *pki) error {
	clientPort, peerPort, apiPort := freePort(), freePort(), freePort()
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(clientPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	etcd, err := e.start("etcd", bins.etcd,
		"--name=default", "--data-dir="+filepath.Join(e.Dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL, "--unsafe-no-fsync", "--log-level=warn")
	if err != nil {
		return err
	}
	e.APIServerURL = "https://127.0.0.1:" + strconv.Itoa(apiPort)
	e.ServiceAccountIssuer = e.APIServerURL
	apiserver, err := e.start("kube-apiserver", bins.apiserver,
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+strconv.Itoa(apiPort),
		"--tls-cert-file="+p.apiserverCert, "--tls-private-key-file="+p.apiserverKey,
		"--client-ca-file="+p.caFile,
		"--service-account-issuer="+e.ServiceAccountIssuer,
		"--service-account-key-file="+p.saPub, "--service-account-signing-key-file="+p.saKey,
		"--authorization-mode=Node,RBAC",
		"--service-cluster-ip-range=10.0.0.0/24", "--endpoint-reconciler-type=none",
		"--kubelet-client-certificate="+p.kubeletClientCert, "--kubelet-client-key="+p.kubeletClientKey,
		"--kubelet-certificate-authority="+p.caFile, "--kubelet-preferred-address-types=InternalIP",
		"--cert-dir="+filepath.Join(e.Dir, "pki", "apiserver-generated"),
		"--profiling=false", "--v=0")
	if err != nil {
		return err
	}
	e.AdminKubeconfig = filepath.Join(e.Dir, "admin.kubeconfig")
	if err := writeKubeconfig(e.AdminKubeconfig, e.APIServerURL, p.caFile, p.adminCert, p.adminKey); err != nil {
		return err
	}
	if e.RESTConfig, err = clientcmd.BuildConfigFromFlags("", e.AdminKubeconfig); err != nil {
		return err
	}
	if e.Client, err = kubernetes.NewForConfig(e.RESTConfig); err != nil {
		return err
	}
	return waitFor(ctx, 60*time.Second, "apiserver /readyz", func() (bool, error) {
		for _, p := range []*process{etcd, apiserver} {
			if done, err := p.exited(); done {
				return false, fmt.Errorf("%s stopped: %w", p.name, err)
			}
		}
		body, err := e.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(body) == "ok", nil
	})
}

func (e *Env) startKubelet(bin string, p *pki) error {
	_, err := e.start("testkubelet", bin,
		"--kubeconfig="+e.AdminKubeconfig, "--node-name=testnode",
		"--tls-cert-file="+p.kubeletCert, "--tls-private-key-file="+p.kubeletKey,
		"--client-ca-file="+p.caFile, "--root-dir="+filepath.Join(e.Dir, "kubelet"))
	return err
}

// start starts a process and registers it for Stop.
func (e *Env) start(name, bin string, args ...string) (*process, error) {
	p, err := startProcess(filepath.Join(e.Dir, "logs"), name, bin, args...)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	return p, nil
}

// Stop stops every process the Env started, in reverse order, and removes a
// temporary Dir. It is safe to call more than once.
func (e *Env) Stop() {
	e.mu.Lock()
	procs := e.procs
	e.procs = nil
	e.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Stop()
	}
	if e.tempDir && os.Getenv("KUBEGATE_KEEP_TESTENV") == "" {
		_ = os.RemoveAll(e.Dir)
	}
}

// logTails returns the end of every process's log, for error messages.
func (e *Env) logTails() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var s string
	for _, p := range e.procs {
		if t := p.LogTail(2000); t != "" {
			s += "\n--- " + p.name + " log (tail) ---\n" + t
		}
	}
	return s
}

// Processes lists the running processes as name → pid.
func (e *Env) Processes() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := map[string]int{}
	for _, p := range e.procs {
		m[p.name] = p.cmd.Process.Pid
	}
	return m
}

func writeKubeconfig(path, server, caFile, certFile, keyFile string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["testenv"] = &clientcmdapi.Cluster{Server: server, CertificateAuthority: caFile}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificate: certFile, ClientKey: keyFile}
	cfg.Contexts["admin@testenv"] = &clientcmdapi.Context{Cluster: "testenv", AuthInfo: "admin", Namespace: "default"}
	cfg.CurrentContext = "admin@testenv"
	return clientcmd.WriteToFile(*cfg, path)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("no free loopback port: %v", err))
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitFor polls cond until it is true, returns an error, or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, errors.Join(ctx.Err(), err))
		case <-tick.C:
		}
	}
}
