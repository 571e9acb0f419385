package agentcred

import (
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// parseSource parses args as `kubegate token` does.
func parseSource(t *testing.T, args []string) (SourceConfig, error) {
	t.Helper()
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var c SourceConfig
	c.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	return c, c.Validate()
}

func TestSourceConfigValidate(t *testing.T) {
	oidc := []string{"--oidc-issuer=https://dex.example", "--client-id=kubegate", "--username=agent", "--password-file=pw"}
	tests := []struct {
		name string
		args []string
		want string // "" for valid
	}{
		{"token file", []string{"--token-file=/t"}, ""},
		{"token file with a cache dir", []string{"--token-file=/t", "--cache-dir=/c"}, ""},
		{"oidc", oidc, ""},
		{"oidc with everything", append(slices.Clone(oidc), "--client-secret-file=s", "--oidc-ca=ca", "--scopes=openid groups", "--cache-dir=c"), ""},
		{"nothing", nil, "no credential source"},
		{"both", append([]string{"--token-file=/t"}, oidc...), "both --token-file and --oidc-issuer"},
		{"oidc flag with token file", []string{"--token-file=/t", "--username=agent"}, "--username goes with --oidc-issuer"},
		{"oidc incomplete", []string{"--oidc-issuer=https://dex.example", "--username=agent"}, "--oidc-issuer needs --client-id, --password-file"},
		{"blank scopes", append(slices.Clone(oidc), "--scopes= "), "--scopes is blank"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseSource(t, tc.args)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestTokenArgsRoundTrip(t *testing.T) {
	t.Chdir(t.TempDir())
	wd, _ := os.Getwd()
	tests := []struct {
		name string
		in   SourceConfig
		want []string
	}{
		{
			name: "token file, relative path made absolute",
			in:   SourceConfig{TokenFile: "token", Scopes: DefaultScopes},
			want: []string{"token", "--token-file=" + filepath.Join(wd, "token")},
		},
		{
			name: "oidc, default scopes left out",
			in:   SourceConfig{Issuer: "https://dex.example/dex", ClientID: "kubegate", Username: "a@b", PasswordFile: "pw", Scopes: "openid  email profile groups"},
			want: []string{"token", "--oidc-issuer=https://dex.example/dex", "--client-id=kubegate", "--username=a@b", "--password-file=" + filepath.Join(wd, "pw")},
		},
		{
			name: "oidc, everything",
			in: SourceConfig{Issuer: "https://dex.example", ClientID: "kubegate", ClientSecretFile: "/s", Username: "-agent",
				PasswordFile: "/pw", IssuerCAFile: "ca.pem", Scopes: "openid groups", CacheDir: "cache"},
			want: []string{"token", "--oidc-issuer=https://dex.example", "--client-id=kubegate", "--client-secret-file=/s", "--username=-agent",
				"--password-file=/pw", "--oidc-ca=" + filepath.Join(wd, "ca.pem"), "--scopes=openid groups", "--cache-dir=" + filepath.Join(wd, "cache")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args, err := tc.in.TokenArgs()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(args, tc.want) {
				t.Fatalf("args = %q\nwant   %q", args, tc.want)
			}
			back, err := parseSource(t, args[1:])
			if err != nil {
				t.Fatalf("parsing the args back: %v", err)
			}
			again, err := back.TokenArgs()
			if err != nil || !slices.Equal(again, args) {
				t.Errorf("args do not round-trip: %q, %v", again, err)
			}
		})
	}
	if _, err := (SourceConfig{}).TokenArgs(); err == nil {
		t.Error("TokenArgs of no source: no error")
	}
}

func TestNewSourceReadsSecretFiles(t *testing.T) {
	clock := newFakeClock()
	p := newProvider(t, clock)
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cfg := SourceConfig{
		Issuer: p.Issuer, ClientID: "kubegate", Username: testUser,
		ClientSecretFile: write("secret", testSecret+"\n"),
		PasswordFile:     write("password", testPassword+"\r\n"),
		IssuerCAFile:     p.WriteCA(t, dir),
		CacheDir:         filepath.Join(dir, "cache"),
	}
	src, err := cfg.NewSource(nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := src.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if issued := p.Issued(); len(issued) != 1 || issued[0] != tok {
		t.Error("the token is not the issued one")
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "cache", "*.token")); len(files) != 1 {
		t.Errorf("cache files = %q, want one in --cache-dir", files)
	}

	tests := []struct {
		name string
		edit func(*SourceConfig)
		want string
	}{
		{"missing password file", func(c *SourceConfig) { c.PasswordFile = filepath.Join(dir, "nope") }, "reading password file " + filepath.Join(dir, "nope") + ": "},
		{"empty password file", func(c *SourceConfig) { c.PasswordFile = write("empty", "\n") }, "password file " + filepath.Join(dir, "empty") + " is empty"},
		{"missing secret file", func(c *SourceConfig) { c.ClientSecretFile = filepath.Join(dir, "nope") }, "reading client secret file "},
		{"CA file not PEM", func(c *SourceConfig) { c.IssuerCAFile = c.PasswordFile }, "OIDC CA file " + filepath.Join(dir, "password") + ": has no PEM certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			tc.edit(&c)
			_, err := c.NewSource(nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), testPassword) || strings.Contains(err.Error(), testSecret) {
				t.Errorf("err = %q holds a secret", err)
			}
		})
	}

	fileSrc, err := SourceConfig{TokenFile: "/var/run/secrets/tokens/kubegate"}.NewSource(nil)
	if err != nil || fileSrc != (FileSource{Path: "/var/run/secrets/tokens/kubegate"}) {
		t.Errorf("token file source = %#v, %v", fileSrc, err)
	}
}
