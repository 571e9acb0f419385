package agentcred

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientauthv1 "k8s.io/client-go/pkg/apis/clientauthentication/v1"
)

// ExecAPIVersion is the exec credential API kubegate speaks, both in the
// kubeconfigs it writes and in the ExecCredential it prints.
const ExecAPIVersion = "client.authentication.k8s.io/v1"

// ErrExecInfo is returned when KUBERNETES_EXEC_INFO asks for an exec
// credential API other than ExecAPIVersion.
var ErrExecInfo = errors.New("unsupported KUBERNETES_EXEC_INFO")

// ExecCredential returns the JSON a client-go exec credential plugin prints:
// an ExecCredential whose status holds token and, unless expiry is zero, its
// expiry (to the second, rounded down).
func ExecCredential(token string, expiry time.Time) ([]byte, error) {
	if token == "" {
		return nil, ErrEmptyToken
	}
	c := clientauthv1.ExecCredential{
		TypeMeta: metav1.TypeMeta{APIVersion: ExecAPIVersion, Kind: "ExecCredential"},
		Status:   &clientauthv1.ExecCredentialStatus{Token: token},
	}
	if !expiry.IsZero() {
		t := metav1.NewTime(expiry.Truncate(time.Second))
		c.Status.ExpirationTimestamp = &t
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// CheckExecInfo checks the KUBERNETES_EXEC_INFO that client-go passes to a
// plugin: empty (not run by client-go) or an ExecCredential of
// ExecAPIVersion. The rest of it is ignored.
func CheckExecInfo(env string) error {
	if env == "" {
		return nil
	}
	var info metav1.TypeMeta
	if err := json.Unmarshal([]byte(env), &info); err != nil {
		return fmt.Errorf("%w: %w", ErrExecInfo, err)
	}
	if info.APIVersion != ExecAPIVersion || info.Kind != "ExecCredential" {
		return fmt.Errorf("%w: it asks for %s %s; kubegate token speaks %s ExecCredential (check the kubeconfig's exec apiVersion)",
			ErrExecInfo, info.APIVersion, info.Kind, ExecAPIVersion)
	}
	return nil
}
