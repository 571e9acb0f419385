package agentcred

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// DefaultName names the cluster, user and context of a kubeconfig when
// KubeconfigOptions.Name is empty.
const DefaultName = "kubegate"

// KubeconfigOptions describe a kubeconfig for an agent: one cluster (the
// gateway), one user (an exec credential plugin) and one context joining
// them, which is the current one.
type KubeconfigOptions struct {
	// Server is the gateway's https URL. Required.
	Server string
	// CAFile is a PEM file of the CA certificates that sign the gateway's
	// serving certificate. Its contents are embedded, so the kubeconfig
	// stands alone. Required.
	CAFile string
	// Name names the cluster, user and context. Empty means DefaultName.
	Name string
	// Namespace is the context's namespace. Empty means none, and so the
	// server's "default".
	Namespace string
	// Command is the exec plugin: normally the absolute path of the kubegate
	// binary. It is written as given; a relative path that has a separator
	// is resolved by client-go against the kubeconfig's directory, a bare
	// name through PATH. Required.
	Command string
	// Args are the plugin's arguments, normally SourceConfig.TokenArgs. They
	// must name files, never hold secrets.
	Args []string
}

// Kubeconfig builds the kubeconfig o describes.
func Kubeconfig(o KubeconfigOptions) (*clientcmdapi.Config, error) {
	u, err := url.Parse(o.Server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("kubeconfig: server %q is not an https URL", o.Server)
	}
	if o.Command == "" {
		return nil, errors.New("kubeconfig: no plugin command")
	}
	if o.CAFile == "" {
		return nil, errors.New("kubeconfig: no CA file")
	}
	ca, err := os.ReadFile(o.CAFile)
	if err != nil {
		return nil, fmt.Errorf("reading CA file %s: %w", o.CAFile, err)
	}
	if err := checkCertsPEM(ca); err != nil {
		return nil, fmt.Errorf("CA file %s: %w", o.CAFile, err)
	}
	name := o.Name
	if name == "" {
		name = DefaultName
	}
	cfg := clientcmdapi.NewConfig()
	cluster := clientcmdapi.NewCluster()
	cluster.Server = o.Server
	cluster.CertificateAuthorityData = ca
	cfg.Clusters[name] = cluster
	user := clientcmdapi.NewAuthInfo()
	user.Exec = &clientcmdapi.ExecConfig{
		Command:            o.Command,
		Args:               append([]string(nil), o.Args...),
		APIVersion:         ExecAPIVersion,
		InstallHint:        "This kubeconfig runs `kubegate token` for its credentials: install kubegate and run `kubegate kubeconfig` again.",
		ProvideClusterInfo: false,
		InteractiveMode:    clientcmdapi.NeverExecInteractiveMode,
	}
	cfg.AuthInfos[name] = user
	kctx := clientcmdapi.NewContext()
	kctx.Cluster, kctx.AuthInfo, kctx.Namespace = name, name, o.Namespace
	cfg.Contexts[name] = kctx
	cfg.CurrentContext = name
	return cfg, nil
}

// WriteKubeconfig writes the kubeconfig o describes to path, mode 0600,
// replacing any file there.
func WriteKubeconfig(path string, o KubeconfigOptions) error {
	cfg, err := Kubeconfig(o)
	if err != nil {
		return err
	}
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		return fmt.Errorf("encoding kubeconfig: %w", err)
	}
	if err := writeFileAtomic(path, b); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	return nil
}

// checkCertsPEM checks that b holds PEM certificates and nothing else.
func checkCertsPEM(b []byte) error {
	n := 0
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return fmt.Errorf("has a PEM %q block; want only CERTIFICATE blocks", block.Type)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return errors.New("has no PEM certificate")
	}
	return nil
}
