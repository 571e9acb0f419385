package agentcred

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	clientauthv1 "k8s.io/client-go/pkg/apis/clientauthentication/v1"
)

func TestExecAPIVersionIsClientGos(t *testing.T) {
	if want := clientauthv1.SchemeGroupVersion.String(); ExecAPIVersion != want {
		t.Errorf("ExecAPIVersion = %q, want %q", ExecAPIVersion, want)
	}
}

func TestExecCredential(t *testing.T) {
	tests := []struct {
		name    string
		expiry  time.Time
		wantExp time.Time // zero: no expirationTimestamp
	}{
		{"with expiry", time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)},
		{"fractional expiry rounds down", time.Date(2030, 1, 2, 3, 4, 5, 900e6, time.FixedZone("X", 3600)), time.Date(2030, 1, 2, 2, 4, 5, 0, time.UTC)},
		{"no expiry", time.Time{}, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := ExecCredential("the-token", tc.expiry)
			if err != nil {
				t.Fatal(err)
			}
			var got clientauthv1.ExecCredential
			dec := json.NewDecoder(strings.NewReader(string(b)))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("decoding %s: %v", b, err)
			}
			if got.APIVersion != "client.authentication.k8s.io/v1" || got.Kind != "ExecCredential" {
				t.Errorf("type = %s %s", got.APIVersion, got.Kind)
			}
			if got.Status == nil || got.Status.Token != "the-token" {
				t.Fatalf("status = %+v, want token the-token", got.Status)
			}
			switch ts := got.Status.ExpirationTimestamp; {
			case tc.wantExp.IsZero() && ts != nil:
				t.Errorf("expirationTimestamp = %v, want none", ts)
			case !tc.wantExp.IsZero() && (ts == nil || !ts.Time.Equal(tc.wantExp)):
				t.Errorf("expirationTimestamp = %v, want %v", ts, tc.wantExp)
			}
			if got.Status.ClientCertificateData != "" || got.Status.ClientKeyData != "" {
				t.Error("status has client certificate data")
			}
		})
	}
	if _, err := ExecCredential("", time.Time{}); !errors.Is(err, ErrEmptyToken) {
		t.Errorf("empty token: err = %v, want ErrEmptyToken", err)
	}
}

func TestCheckExecInfo(t *testing.T) {
	tests := []struct {
		name, env string
		wantErr   bool
	}{
		{"not run by client-go", "", false},
		{"client-go v1", `{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}`, false},
		{"v1beta1", `{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{}}`, true},
		{"wrong kind", `{"kind":"Pod","apiVersion":"client.authentication.k8s.io/v1"}`, true},
		{"not JSON", `kind: ExecCredential`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckExecInfo(tc.env)
			if tc.wantErr != (err != nil) || err != nil && !errors.Is(err, ErrExecInfo) {
				t.Errorf("err = %v, want error: %v (ErrExecInfo)", err, tc.wantErr)
			}
		})
	}
}
