package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubegate/kubegate/k8swire"
)

func TestMaskTestShowsWhatClientsGet(t *testing.T) {
	secret := "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: prod}\ndata: {password: c3VwZXJzZWNyZXQ=}\n"
	cm := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"db-password":"hunter2","color":"blue"}}`
	dir := t.TempDir()
	cfg := filepath.Join(dir, "kubegate.yaml")
	conf := "tls: {certFile: a, keyFile: b}\nidentity: {issuers: [{url: https://x, audience: k}]}\naudit: {file: {path: /tmp/x}}\n" +
		"masking:\n  rules: [{resource: configmaps, fields: [data], keyPattern: \"(?i)password\"}]\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, input, config string
		want, gone          []string
		wantErr             string
	}{
		{name: "secret, built-in rules", input: secret, want: []string{k8swire.MaskMarkerBase64}, gone: []string{"c3VwZXJzZWNyZXQ="}},
		{name: "configmap without the rule", input: cm, want: []string{"hunter2"}},
		{name: "configmap with the config's rule", input: cm, config: cfg, want: []string{k8swire.MaskMarker, `"blue"`}, gone: []string{"hunter2"}},
		{name: "not an object", input: "[1, 2", wantErr: "neither JSON nor YAML"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("KUBEGATE_CONFIG", "")
			args := []string{"test", "-f", "-"}
			if tc.config != "" {
				args = append(args, "--config", tc.config)
			}
			var out, errOut bytes.Buffer
			err := runMask(context.Background(), args, strings.NewReader(tc.input), &out, &errOut)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, g := range tc.gone {
				if strings.Contains(out.String(), g) {
					t.Errorf("output still holds %q:\n%s", g, out.String())
				}
			}
		})
	}
}
