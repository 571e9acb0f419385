package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// IssueServingCert issues a serving certificate for 127.0.0.1 and localhost
// signed by the Env's CA, writing DIR/pki/NAME.crt and .key.
func (e *Env) IssueServingCert(name string) (certFile, keyFile string, err error) {
	return e.ca.writeIssued(filepath.Join(e.Dir, "pki"), name, certSpec{
		cn: name, server: true, ips: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}, dns: []string{"localhost"},
	})
}

// GatewayKubeconfig writes a kubeconfig for a client-certificate user
// "kubegate" that may impersonate users, groups, service accounts, uids and
// extras and do nothing else: the credential kubegate holds upstream.
func (e *Env) GatewayKubeconfig(ctx context.Context) (string, error) {
	cr := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "kubegate-impersonator"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"users", "groups", "serviceaccounts"}, Verbs: []string{"impersonate"}},
			// RBAC cannot say "userextras/<any key>" (a key holds slashes), so
			// uids and every extra key are granted as "*" in this group.
			{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"*"}, Verbs: []string{"impersonate"}},
		},
	}
	if _, err := e.Client.RbacV1().ClusterRoles().Create(ctx, cr, metav1.CreateOptions{}); ignoreExists(err) != nil {
		return "", err
	}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "kubegate-impersonator"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "kubegate-impersonator"},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: "kubegate"}},
	}
	if _, err := e.Client.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); ignoreExists(err) != nil {
		return "", err
	}
	dir := filepath.Join(e.Dir, "pki")
	certFile, keyFile, err := e.ca.writeIssued(dir, "kubegate-upstream", certSpec{cn: "kubegate", client: true})
	if err != nil {
		return "", err
	}
	path := filepath.Join(e.Dir, "kubegate-upstream.kubeconfig")
	return path, writeKubeconfig(path, e.APIServerURL, e.CAFile, certFile, keyFile)
}

// WriteTokenKubeconfig writes a kubeconfig for server (trusting the Env's
// CA) that presents a fixed bearer token.
func (e *Env) WriteTokenKubeconfig(path, server, namespace, token string) error {
	e.NoteSecret("the token of "+filepath.Base(path), token)
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kubegate"] = &clientcmdapi.Cluster{Server: server, CertificateAuthority: e.CAFile}
	cfg.AuthInfos["user"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["user@kubegate"] = &clientcmdapi.Context{Cluster: "kubegate", AuthInfo: "user", Namespace: namespace}
	cfg.CurrentContext = "user@kubegate"
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("writing kubeconfig %s: %w", path, err)
	}
	return os.Chmod(path, 0o600)
}

// Bind grants a ClusterRole (such as the built-in "edit" or "view") to a
// subject in a namespace.
func (e *Env) Bind(ctx context.Context, namespace, clusterRole string, subject rbacv1.Subject) error {
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{GenerateName: clusterRole + "-", Namespace: namespace},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: clusterRole},
		Subjects:   []rbacv1.Subject{subject},
	}
	_, err := e.Client.RbacV1().RoleBindings(namespace).Create(ctx, rb, metav1.CreateOptions{})
	return err
}
