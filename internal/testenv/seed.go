package testenv

import (
	"context"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// echoLoop is the toolbox container's main process: attach sessions talk to it.
const echoLoop = `echo ready; while IFS= read -r line; do echo "got: $line"; done`

// seed creates what every test expects: OIDC discovery open to anonymous
// callers, the namespaces with their default ServiceAccount, and Running Pods.
func (e *Env) seed(ctx context.Context) error {
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "oidc-anonymous"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:service-account-issuer-discovery"},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "Group", Name: "system:unauthenticated"}},
	}
	if _, err := e.Client.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); ignoreExists(err) != nil {
		return err
	}
	if err := e.aggregateClusterRoles(ctx); err != nil {
		return err
	}
	for _, ns := range append([]string{"default"}, e.Namespaces...) {
		if err := e.CreateNamespace(ctx, ns); err != nil {
			return err
		}
	}
	if err := waitFor(ctx, 30*time.Second, "node testnode", func() (bool, error) {
		_, err := e.Client.CoreV1().Nodes().Get(ctx, "testnode", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		return err
	}
	for _, ns := range e.Namespaces {
		for _, name := range e.Pods {
			if err := e.CreatePod(ctx, ns, name, "sh", "-c", echoLoop); err != nil {
				return err
			}
		}
	}
	return nil
}

// CreateNamespace creates a namespace and its default ServiceAccount (there
// is no controller manager to create it). Existing ones are kept.
func (e *Env) CreateNamespace(ctx context.Context, name string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := e.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); ignoreExists(err) != nil {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return e.CreateServiceAccount(ctx, name, "default")
}

// CreateServiceAccount creates a ServiceAccount unless it exists.
func (e *Env) CreateServiceAccount(ctx context.Context, namespace, name string) error {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}}
	if _, err := e.Client.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{}); ignoreExists(err) != nil {
		return fmt.Errorf("creating service account %s/%s: %w", namespace, name, err)
	}
	return nil
}

// CreatePod creates a one-container Pod (container "main") on the test
// kubelet whose main process runs command with stdin open, and waits until it
// is Running.
func (e *Env) CreatePod(ctx context.Context, namespace, name string, command ...string) error {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			NodeName:                      "testnode",
			AutomountServiceAccountToken:  new(false),
			TerminationGracePeriodSeconds: new(int64(1)),
			Containers: []corev1.Container{{
				Name: "main", Image: "testkubelet/local", Command: command, Stdin: true,
			}},
		},
	}
	if _, err := e.Client.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{}); ignoreExists(err) != nil {
		return fmt.Errorf("creating pod %s/%s: %w", namespace, name, err)
	}
	return waitFor(ctx, 30*time.Second, "pod "+namespace+"/"+name+" running", func() (bool, error) {
		p, err := e.Client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, nil
	})
}

// ServiceAccountToken mints a token for a ServiceAccount with the
// TokenRequest API.
func (e *Env) ServiceAccountToken(ctx context.Context, namespace, name, audience string, ttl time.Duration) (string, error) {
	secs := int64(ttl / time.Second)
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: &secs}}
	out, err := e.Client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, tr, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("requesting token for %s/%s: %w", namespace, name, err)
	}
	e.NoteSecret(fmt.Sprintf("a service-account token of %s/%s (audience %s)", namespace, name, audience), out.Status.Token)
	return out.Status.Token, nil
}

func ignoreExists(err error) error {
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}
