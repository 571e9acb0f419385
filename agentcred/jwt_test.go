package agentcred

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// testSignature ends every test JWT; errors must never quote it.
const testSignature = "c2lnbmF0dXJlLW5vdC1jaGVja2Vk"

// fakeJWT returns an unsigned-looking JWT with the given claims: enough for
// code that reads exp without verifying.
func fakeJWT(t testing.TB, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc(payload) + "." + testSignature
}

// jwtCase is one table case, shared with the fuzz seeds.
type jwtCase struct {
	name    string
	token   string
	want    time.Time
	wantErr bool
}

func jwtCases(t testing.TB) []jwtCase {
	enc := base64.RawURLEncoding.EncodeToString
	header := enc([]byte(`{"alg":"none"}`))
	return []jwtCase{
		{name: "integer exp", token: fakeJWT(t, map[string]any{"exp": 1800000000}), want: time.Unix(1800000000, 0)},
		{name: "fractional exp", token: fakeJWT(t, map[string]any{"exp": 1800000000.5}), want: time.Unix(1800000000, 5e8)},
		{name: "no exp", token: fakeJWT(t, map[string]any{"sub": "agent"})},
		{name: "padded payload", token: header + "." + base64.URLEncoding.EncodeToString([]byte(`{"exp": 1800000000}`)) /* 19 bytes: one "=" */ + "." + testSignature, want: time.Unix(1800000000, 0)},
		{name: "two parts", token: header + "." + enc([]byte(`{"exp":1}`)), wantErr: true},
		{name: "opaque token", token: "opaque-" + testSignature, wantErr: true},
		{name: "payload not base64", token: header + ".!!!." + testSignature, wantErr: true},
		{name: "payload not JSON", token: header + "." + enc([]byte("not json")) + "." + testSignature, wantErr: true},
		{name: "payload a JSON array", token: header + "." + enc([]byte("[1]")) + "." + testSignature, wantErr: true},
		{name: "exp not a number", token: fakeJWT(t, map[string]any{"exp": "soon"}), wantErr: true},
		{name: "exp negative", token: fakeJWT(t, map[string]any{"exp": -5}), wantErr: true},
		{name: "exp past year 9999", token: fakeJWT(t, map[string]any{"exp": 1e300}), wantErr: true},
	}
}

func TestJWTExpiry(t *testing.T) {
	for _, tc := range jwtCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			got, err := jwtExpiry(tc.token)
			if tc.wantErr {
				if !errors.Is(err, ErrNotJWT) {
					t.Fatalf("err = %v, want ErrNotJWT", err)
				}
				if strings.Contains(err.Error(), testSignature) {
					t.Errorf("error %q quotes the token", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(tc.want) {
				t.Errorf("expiry = %v, want %v", got, tc.want)
			}
		})
	}
}

func FuzzJWTExpiry(f *testing.F) {
	for _, tc := range jwtCases(f) {
		f.Add(tc.token)
	}
	f.Fuzz(func(t *testing.T, token string) {
		exp, err := jwtExpiry(token)
		if err != nil {
			if !errors.Is(err, ErrNotJWT) {
				t.Fatalf("err = %v, want ErrNotJWT", err)
			}
			if !exp.IsZero() {
				t.Fatalf("expiry %v with an error", exp)
			}
			return
		}
		if !exp.IsZero() && (exp.Unix() < 0 || exp.Unix() > maxExp) {
			t.Fatalf("expiry %v out of range", exp)
		}
	})
}
