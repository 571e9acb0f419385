package main

import (
	"context"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubegate/kubegate/agentcred/oidctest"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// repoRoot walks up from the test's directory to the directory of go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// buildKubegate builds this command into a temporary directory.
func buildKubegate(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool to build kubegate with")
	}
	bin := filepath.Join(t.TempDir(), "kubegate")
	cmd := exec.Command(goTool, "build", "-o", bin, "./cmd/kubegate")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/kubegate: %v\n%s", err, out)
	}
	return bin
}

// fakeGateway is a TLS server standing in for kubegate: it records the
// Authorization header of each request and answers /version.
type fakeGateway struct {
	*httptest.Server
	mu    sync.Mutex
	auths []string
}

func newFakeGateway(t *testing.T) *fakeGateway {
	g := &fakeGateway{}
	g.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		g.auths = append(g.auths, r.Header.Get("Authorization"))
		g.mu.Unlock()
		if r.URL.Path != "/version" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"major":"1","minor":"37","gitVersion":"v1.37.2"}`))
	}))
	t.Cleanup(g.Close)
	return g
}

func (g *fakeGateway) authorizations() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.auths)
}

// TestKubeconfigThroughClientGo writes kubeconfigs with `kubegate
// kubeconfig` and uses them with a client-go clientset, whose exec plugin
// machinery runs the real kubegate binary's `token` command.
func TestKubeconfigThroughClientGo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kubegate")
	}
	bin := buildKubegate(t)
	gw := newFakeGateway(t)
	dir := t.TempDir()
	caFile := writeFile(t, filepath.Join(dir, "gateway-ca.pem"),
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: gw.Certificate().Raw})))

	const user, password, secret = "agent@kubegate.test", "agent-password-789", "client-secret-012"
	idp := oidctest.New(t, oidctest.Options{ClientSecret: secret, Users: map[string]string{user: password}})
	saToken := testJWT(time.Now().Add(time.Hour))

	tests := []struct {
		name      string
		source    []string
		wantToken func() string
	}{
		{
			name:      "projected token file",
			source:    []string{"--token-file", writeFile(t, filepath.Join(dir, "sa-token"), saToken+"\n")},
			wantToken: func() string { return saToken },
		},
		{
			name: "oidc password grant",
			source: []string{
				"--oidc-issuer", idp.Issuer, "--client-id", "kubegate", "--username", user,
				"--client-secret-file", writeFile(t, filepath.Join(dir, "client-secret"), secret),
				"--password-file", writeFile(t, filepath.Join(dir, "password"), password+"\n"),
				"--oidc-ca", idp.WriteCA(t, dir), "--cache-dir", filepath.Join(dir, "cache"),
			},
			wantToken: func() string {
				if issued := idp.Issued(); len(issued) == 1 {
					return issued[0]
				}
				return "exactly one issued token"
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
			args := append([]string{"--server", gw.URL, "--ca", caFile, "--namespace", "dev", "--command", bin, "--out", kubeconfig}, tc.source...)
			if err := runKubeconfig(context.Background(), args); err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(kubeconfig)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(raw), password) || strings.Contains(string(raw), secret) {
				t.Fatal("the kubeconfig holds a secret")
			}

			before := len(gw.authorizations())
			restConfig, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
			if err != nil {
				t.Fatal(err)
			}
			clientset, err := kubernetes.NewForConfig(restConfig)
			if err != nil {
				t.Fatal(err)
			}
			version, err := clientset.Discovery().ServerVersion()
			if err != nil {
				t.Fatalf("GET /version through the exec plugin: %v", err)
			}
			if version.GitVersion != "v1.37.2" {
				t.Errorf("version = %+v", version)
			}
			auths := gw.authorizations()[before:]
			if want := "Bearer " + tc.wantToken(); len(auths) != 1 || auths[0] != want {
				t.Errorf("gateway saw Authorization %q, want [%q]", auths, want)
			}
		})
	}
}

func TestKubeconfigCommandErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no out", []string{"--server", "https://kubegate.example", "--ca", "ca.pem", "--token-file", "t"}, "--out is required"},
		{"no source", []string{"--server", "https://kubegate.example", "--ca", "ca.pem", "--out", filepath.Join(dir, "k")}, "no credential source"},
		{"no CA", []string{"--server", "https://kubegate.example", "--token-file", "t", "--out", filepath.Join(dir, "k")}, "no CA file"},
		{"stray argument", []string{"--out", filepath.Join(dir, "k"), "extra"}, `unexpected arguments ["extra"]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := runKubeconfig(context.Background(), tc.args)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
			if _, statErr := os.Stat(filepath.Join(dir, "k")); !errors.Is(statErr, os.ErrNotExist) {
				t.Errorf("a kubeconfig was written despite the error")
			}
		})
	}
}
