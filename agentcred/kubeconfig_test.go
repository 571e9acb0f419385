package agentcred

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// writeTestCA writes a self-signed CA certificate in PEM and returns its path.
func writeTestCA(t *testing.T, dir string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubegate test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestWriteKubeconfig(t *testing.T) {
	dir := t.TempDir()
	caFile := writeTestCA(t, dir)
	passwordFile := filepath.Join(dir, "password")
	secretFile := filepath.Join(dir, "client-secret")
	for path, secret := range map[string]string{passwordFile: testPassword, secretFile: testSecret} {
		if err := os.WriteFile(path, []byte(secret), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	args, err := SourceConfig{
		Issuer: "https://dex.example/dex", ClientID: "kubegate", ClientSecretFile: secretFile,
		Username: testUser, PasswordFile: passwordFile,
	}.TokenArgs()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "agent.kubeconfig")
	// An existing, world-readable file is replaced by a 0600 one.
	if err := os.WriteFile(out, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := KubeconfigOptions{
		Server: "https://kubegate.example:8443", CAFile: caFile, Name: "ci", Namespace: "dev",
		Command: "/usr/local/bin/kubegate", Args: args,
	}
	if err := WriteKubeconfig(out, opts); err != nil {
		t.Fatal(err)
	}

	info, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", info.Mode().Perm())
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{testPassword, testSecret} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the kubeconfig holds the secret %q", secret)
		}
	}

	cfg, err := clientcmd.LoadFromFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CurrentContext != "ci" {
		t.Errorf("current context = %q, want ci", cfg.CurrentContext)
	}
	if c := cfg.Contexts["ci"]; c == nil || c.Cluster != "ci" || c.AuthInfo != "ci" || c.Namespace != "dev" {
		t.Errorf("context = %+v", c)
	}
	ca, _ := os.ReadFile(caFile)
	if c := cfg.Clusters["ci"]; c == nil || c.Server != opts.Server || !bytes.Equal(c.CertificateAuthorityData, ca) || c.CertificateAuthority != "" {
		t.Errorf("cluster = %+v, want the server and the CA embedded", c)
	}
	user := cfg.AuthInfos["ci"]
	if user == nil || user.Exec == nil {
		t.Fatalf("user = %+v, want an exec plugin", user)
	}
	want := &clientcmdapi.ExecConfig{
		Command: "/usr/local/bin/kubegate", Args: args, APIVersion: "client.authentication.k8s.io/v1",
		InteractiveMode: clientcmdapi.NeverExecInteractiveMode, ProvideClusterInfo: false,
	}
	got := user.Exec
	if got.Command != want.Command || !slices.Equal(got.Args, want.Args) || got.APIVersion != want.APIVersion ||
		got.InteractiveMode != want.InteractiveMode || got.ProvideClusterInfo || len(got.Env) != 0 {
		t.Errorf("exec = %+v, want %+v", got, want)
	}
	if user.Token != "" || user.TokenFile != "" || user.Password != "" {
		t.Errorf("user has static credentials: %+v", user)
	}
	if !slices.Contains(args, "--password-file="+passwordFile) || !slices.Contains(args, "--client-secret-file="+secretFile) {
		t.Errorf("args = %q, want the secret files' paths", args)
	}

	// client-go turns it into a rest.Config that runs the plugin.
	rc, err := clientcmd.NewDefaultClientConfig(*cfg, nil).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	if rc.Host != opts.Server || rc.ExecProvider == nil || !bytes.Equal(rc.CAData, ca) {
		t.Errorf("rest config: host %q, exec %v, CA embedded %v", rc.Host, rc.ExecProvider != nil, bytes.Equal(rc.CAData, ca))
	}
}

func TestWriteKubeconfigDefaultName(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "kubeconfig")
	err := WriteKubeconfig(out, KubeconfigOptions{Server: "https://127.0.0.1:8443", CAFile: writeTestCA(t, dir), Command: "kubegate", Args: []string{"token", "--token-file=/var/run/secrets/tokens/kubegate"}})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.LoadFromFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CurrentContext != DefaultName || cfg.Contexts[DefaultName].Namespace != "" {
		t.Errorf("current context = %q (%+v), want %q without a namespace", cfg.CurrentContext, cfg.Contexts[DefaultName], DefaultName)
	}
}

func TestKubeconfigErrors(t *testing.T) {
	dir := t.TempDir()
	caFile := writeTestCA(t, dir)
	keyFile := filepath.Join(dir, "key.pem")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1}}), 0o600)
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	valid := KubeconfigOptions{Server: "https://kubegate.example", CAFile: caFile, Command: "kubegate"}
	tests := []struct {
		name string
		edit func(*KubeconfigOptions)
		want string
	}{
		{"http server", func(o *KubeconfigOptions) { o.Server = "http://kubegate.example" }, "not an https URL"},
		{"no server", func(o *KubeconfigOptions) { o.Server = "" }, "not an https URL"},
		{"no command", func(o *KubeconfigOptions) { o.Command = "" }, "no plugin command"},
		{"no CA", func(o *KubeconfigOptions) { o.CAFile = "" }, "no CA file"},
		{"missing CA", func(o *KubeconfigOptions) { o.CAFile = filepath.Join(dir, "missing") }, "reading CA file " + filepath.Join(dir, "missing")},
		{"CA not PEM", func(o *KubeconfigOptions) { o.CAFile = notPEM }, "has no PEM certificate"},
		{"CA file holds a key", func(o *KubeconfigOptions) { o.CAFile = keyFile }, `PEM "EC PRIVATE KEY" block`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := valid
			tc.edit(&o)
			_, err := Kubeconfig(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
