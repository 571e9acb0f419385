package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kubegate/kubegate/internal/s3test"
)

const testBucket = "kubegate-audit"

// startS3 runs a versitygw for the test with testBucket in it, skipping the
// test when the binary is not built.
func startS3(t *testing.T) *s3test.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	srv := s3test.StartT(t, ctx)
	if err := srv.CreateBucket(ctx, testBucket); err != nil {
		t.Fatal(err)
	}
	return srv
}

// newTestS3Store is a store in testBucket on srv under prefix.
func newTestS3Store(t *testing.T, srv *s3test.Server, prefix string) *S3Store {
	t.Helper()
	st, err := NewS3Store(t.Context(), S3Config{
		Endpoint:        srv.Endpoint,
		Bucket:          testBucket,
		Prefix:          prefix,
		AccessKeyID:     srv.AccessKey,
		SecretAccessKey: srv.SecretKey,
		PathStyle:       true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func getString(t *testing.T, st ObjectStore, key string) string {
	t.Helper()
	rc, err := st.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %s: %v", key, err)
	}
	return string(b)
}

func putString(t *testing.T, st ObjectStore, key, value string) {
	t.Helper()
	if err := st.Put(t.Context(), key, strings.NewReader(value), int64(len(value))); err != nil {
		t.Fatalf("Put %s: %v", key, err)
	}
}

func listAll(t *testing.T, st ObjectStore, prefix string) []string {
	t.Helper()
	var keys []string
	for k, err := range st.List(t.Context(), prefix) {
		if err != nil {
			t.Fatalf("List %q: %v", prefix, err)
		}
		keys = append(keys, k)
	}
	return keys
}

func TestS3StoreRoundTrip(t *testing.T) {
	srv := startS3(t)
	st := newTestS3Store(t, srv, "kg/")

	objects := map[string]string{
		"events/node-a/00000000000000000001-00000000000000000002.jsonl": "{\"a\":1}\n{\"a\":2}\n",
		"events/node-a/00000000000000000003-00000000000000000003.jsonl": "{\"a\":3}\n",
		"events/node-b/00000000000000000001-00000000000000000001.jsonl": "{\"b\":1}\n",
		"recordings/2026-11-23/s1.cast":                                 "{\"version\":2}\n",
		"empty":                                                         "",
	}
	for k, v := range objects {
		putString(t, st, k, v)
	}
	for k, v := range objects {
		if got := getString(t, st, k); got != v {
			t.Errorf("Get %s = %q, want %q", k, got, v)
		}
	}

	// The prefix is the store's: the server holds kg/KEY.
	head, err := srv.Client().HeadObject(t.Context(), &s3.HeadObjectInput{
		Bucket: aws.String(testBucket), Key: aws.String("kg/recordings/2026-11-23/s1.cast"),
	})
	if err != nil {
		t.Fatalf("the object is not under the store's prefix: %v", err)
	}
	if aws.ToInt64(head.ContentLength) != int64(len(objects["recordings/2026-11-23/s1.cast"])) {
		t.Errorf("stored size %d", aws.ToInt64(head.ContentLength))
	}

	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"events/", []string{
			"events/node-a/00000000000000000001-00000000000000000002.jsonl",
			"events/node-a/00000000000000000003-00000000000000000003.jsonl",
			"events/node-b/00000000000000000001-00000000000000000001.jsonl",
		}},
		{"events/node-b/", []string{"events/node-b/00000000000000000001-00000000000000000001.jsonl"}},
		{"recordings/", []string{"recordings/2026-11-23/s1.cast"}},
		{"nothing/", nil},
	} {
		t.Run("List "+tc.prefix, func(t *testing.T) {
			if got := listAll(t, st, tc.prefix); !slices.Equal(got, tc.want) {
				t.Errorf("List(%q) = %q, want %q", tc.prefix, got, tc.want)
			}
		})
	}
	all := listAll(t, st, "")
	if len(all) != len(objects) || !slices.IsSorted(all) {
		t.Errorf("List(\"\") = %q, want the %d keys in lexical order", all, len(objects))
	}

	// Stopping early stops the iteration.
	n := 0
	for range st.List(t.Context(), "") {
		n++
		break
	}
	if n != 1 {
		t.Errorf("iterations after break = %d", n)
	}
}

func TestS3StoreNotFound(t *testing.T) {
	srv := startS3(t)
	st := newTestS3Store(t, srv, "kg/")
	_, err := st.Get(t.Context(), "events/none.jsonl")
	if !errors.Is(err, ErrObjectNotFound) {
		t.Fatalf("Get of a missing key: %v, want ErrObjectNotFound", err)
	}
	if !strings.Contains(err.Error(), "s3://"+testBucket+"/kg/events/none.jsonl") {
		t.Errorf("error %q does not name the object", err)
	}

	// A missing bucket is a configuration error, not a missing key.
	other, err := NewS3Store(t.Context(), S3Config{
		Endpoint: srv.Endpoint, Bucket: "no-such-bucket", AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey, PathStyle: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Get(t.Context(), "k"); err == nil || errors.Is(err, ErrObjectNotFound) {
		t.Errorf("Get from a missing bucket: %v, want an error other than ErrObjectNotFound", err)
	}
}

func TestS3StorePutReplaces(t *testing.T) {
	srv := startS3(t)
	st := newTestS3Store(t, srv, "")
	putString(t, st, "events/n/1.jsonl", "first, and longer than the second\n")
	putString(t, st, "events/n/1.jsonl", "second\n")
	if got := getString(t, st, "events/n/1.jsonl"); got != "second\n" {
		t.Errorf("after the second Put: %q", got)
	}
	if keys := listAll(t, st, "events/"); len(keys) != 1 {
		t.Errorf("keys after two Puts of one key: %q", keys)
	}
}

// noSeek hides every method but Read, so the uploader must buffer parts.
type noSeek struct{ r io.Reader }

func (n noSeek) Read(p []byte) (int, error) { return n.r.Read(p) }

func TestS3StoreMultipart(t *testing.T) {
	srv := startS3(t)
	st := newTestS3Store(t, srv, "kg/")

	const size = 20 << 20 // three parts of 8 MiB or less
	data := make([]byte, size)
	rng := rand.NewChaCha8([32]byte{1})
	_, _ = rng.Read(data)
	want := sha256.Sum256(data)

	for _, tc := range []struct {
		name string
		body io.Reader
	}{
		{"stream", noSeek{bytes.NewReader(data)}},
		{"readerAt", bytes.NewReader(data)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "recordings/2026-11-23/big-" + tc.name + ".cast"
			if err := st.Put(t.Context(), key, tc.body, size); err != nil {
				t.Fatal(err)
			}
			rc, err := st.Get(t.Context(), key)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			h := sha256.New()
			n, err := io.Copy(h, rc)
			if err != nil {
				t.Fatal(err)
			}
			if n != size || !bytes.Equal(h.Sum(nil), want[:]) {
				t.Fatalf("got %d bytes with sha256 %x, want %d bytes with %x", n, h.Sum(nil), size, want)
			}
			// A multipart object's ETag ends in -<parts>.
			head, err := srv.Client().HeadObject(t.Context(), &s3.HeadObjectInput{
				Bucket: aws.String(testBucket), Key: aws.String("kg/" + key),
			})
			if err != nil {
				t.Fatal(err)
			}
			if etag := strings.Trim(aws.ToString(head.ETag), `"`); !strings.HasSuffix(etag, "-3") {
				t.Errorf("ETag %s: not uploaded in 3 parts", etag)
			}
		})
	}
}

func TestS3StoreShortBody(t *testing.T) {
	srv := startS3(t)
	st := newTestS3Store(t, srv, "")
	for _, tc := range []struct {
		name string
		size int
	}{
		{"small", 100},
		{"multipart", 9 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "short-" + tc.name
			body := noSeek{bytes.NewReader(make([]byte, tc.size-1))}
			if err := st.Put(t.Context(), key, body, int64(tc.size)); err == nil {
				t.Fatal("Put of a body one byte short succeeded")
			}
			if _, err := st.Get(t.Context(), key); !errors.Is(err, ErrObjectNotFound) {
				t.Errorf("after a failed Put, Get: %v, want ErrObjectNotFound", err)
			}
			seekable := bytes.NewReader(make([]byte, tc.size-1))
			if err := st.Put(t.Context(), key, seekable, int64(tc.size)); err == nil {
				t.Fatal("Put of a seekable body one byte short succeeded")
			}
		})
	}
	// Bytes past size are not stored.
	if err := st.Put(t.Context(), "long", strings.NewReader("0123456789"), 4); err != nil {
		t.Fatal(err)
	}
	if got := getString(t, st, "long"); got != "0123" {
		t.Errorf("Put of 4 bytes stored %q", got)
	}
}

func TestS3StoreListPages(t *testing.T) {
	srv := startS3(t)
	st := newTestS3Store(t, srv, "kg/")
	st.listPageSize = 2

	var want []string
	for i := range 7 {
		want = append(want, fmt.Sprintf("events/n/%020d-%020d.jsonl", i*10, i*10+9))
	}
	// Keys whose lexical order is not the order of a walk through
	// directories ("n-a/" < "n.b/" < "n/" < "n0/").
	want = append(want, "events/n-a/1.jsonl", "events/n.b/1.jsonl", "events/n/0-", "events/n0/1.jsonl")
	for _, k := range slices.Backward(want) {
		putString(t, st, k, k)
	}
	slices.Sort(want)
	putString(t, st, "recordings/2026-11-23/x.cast", "not listed under events/")

	if got := listAll(t, st, "events/"); !slices.Equal(got, want) {
		t.Errorf("List over pages of 2 = %q, want %q", got, want)
	}

	// Breaking off in the middle of a page, and after a whole page.
	for _, stop := range []int{1, 2, 3} {
		var got []string
		for k, err := range st.List(t.Context(), "events/") {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, k)
			if len(got) == stop {
				break
			}
		}
		if !slices.Equal(got, want[:stop]) {
			t.Errorf("first %d keys = %q", stop, got)
		}
	}
}

func TestS3StoreSurvivesRestart(t *testing.T) {
	srv := startS3(t)
	st := newTestS3Store(t, srv, "kg/")
	putString(t, st, "events/n/before.jsonl", "before\n")

	srv.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	err := st.Put(ctx, "events/n/during.jsonl", strings.NewReader("during\n"), 7)
	cancel()
	if err == nil {
		t.Fatal("Put while the server is down succeeded")
	}
	_, err = st.Get(t.Context(), "events/n/before.jsonl")
	if err == nil || errors.Is(err, ErrObjectNotFound) {
		t.Errorf("Get while the server is down: %v, want a connection error", err)
	}
	for _, err := range st.List(t.Context(), "events/") {
		if err == nil {
			t.Error("List while the server is down yielded a key")
		}
	}

	if err := srv.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	putString(t, st, "events/n/after.jsonl", "after\n")
	if got := getString(t, st, "events/n/before.jsonl"); got != "before\n" {
		t.Errorf("object stored before the restart: %q", got)
	}
	if got := listAll(t, st, "events/n/"); !slices.Equal(got, []string{"events/n/after.jsonl", "events/n/before.jsonl"}) {
		t.Errorf("keys after the restart: %q", got)
	}
}

func TestS3ConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  S3Config
		want string
	}{
		{"no bucket", S3Config{}, "bucket is required"},
		{"key without secret", S3Config{Bucket: "b", AccessKeyID: "AK"}, "both"},
		{"secret without key", S3Config{Bucket: "b", SecretAccessKey: "s3cr3t-value"}, "both"},
		{"endpoint without scheme", S3Config{Bucket: "b", Endpoint: "minio:9000"}, "http or https URL"},
		{"missing CA file", S3Config{Bucket: "b", CAFile: filepath.Join(t.TempDir(), "none.pem")}, "CA file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewS3Store(t.Context(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewS3Store: %v, want an error about %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cr3t-value") {
				t.Errorf("error %q holds the secret", err)
			}
		})
	}
	// Zero values: AWS, us-east-1, the default credential chain.
	if _, err := NewS3Store(t.Context(), S3Config{Bucket: "b"}); err != nil {
		t.Errorf("NewS3Store with only a bucket: %v", err)
	}
}

func TestS3ConfigNeverShowsSecret(t *testing.T) {
	const secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
	cfg := S3Config{Endpoint: "http://127.0.0.1:1", Bucket: "b", Prefix: "p/", AccessKeyID: "AKID", SecretAccessKey: secret, PathStyle: true}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("store", "cfg", cfg)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("store", "cfg", cfg)
	j, _ := json.Marshal(map[string]string{"s": cfg.String()})
	for _, s := range []string{cfg.String(), fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%v", &cfg), logs.String(), string(j)} {
		if strings.Contains(s, secret) {
			t.Errorf("%q holds the secret", s)
		}
	}
	if s := cfg.String(); !strings.Contains(s, "s3://b/p/") || !strings.Contains(s, "AKID") || !strings.Contains(s, "http://127.0.0.1:1") {
		t.Errorf("String() = %q, want the bucket, prefix, endpoint and key id", s)
	}

	// Nor do the errors of a store that the server refuses.
	srv := startS3(t)
	st, err := NewS3Store(t.Context(), S3Config{
		Endpoint: srv.Endpoint, Bucket: testBucket, AccessKeyID: srv.AccessKey, SecretAccessKey: secret, PathStyle: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	errs := []error{st.Put(t.Context(), "k", strings.NewReader("v"), 1)}
	_, err = st.Get(t.Context(), "k")
	errs = append(errs, err)
	for _, err := range st.List(t.Context(), "") {
		errs = append(errs, err)
	}
	for _, err := range errs {
		if err == nil {
			t.Fatal("a request with the wrong secret succeeded")
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprintf("%+v", err), secret) {
			t.Errorf("error %q holds the secret", err)
		}
	}
}

// TestS3StoreCAFile checks that a private endpoint's CA is trusted from
// CAFile alone. The TLS server speaks just enough S3 to refuse a Get.
func TestS3StoreCAFile(t *testing.T) {
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>`)
	}))
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	ts.StartTLS()
	defer ts.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := S3Config{Endpoint: ts.URL, Bucket: "b", AccessKeyID: "AK", SecretAccessKey: "SK", PathStyle: true}

	without, err := NewS3Store(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = without.Get(t.Context(), "k")
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); !ok {
		t.Errorf("Get without the CA: %v, want a certificate verification error", err)
	}

	cfg.CAFile = caFile
	with, err := NewS3Store(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := with.Get(t.Context(), "k"); !errors.Is(err, ErrObjectNotFound) {
		t.Errorf("Get with the CA: %v, want ErrObjectNotFound", err)
	}

	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("nothing here"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.CAFile = notPEM
	if _, err := NewS3Store(t.Context(), cfg); err == nil {
		t.Error("NewS3Store with a CA file holding no certificate succeeded")
	}
}

func TestParseS3URL(t *testing.T) {
	for _, tc := range []struct {
		in             string
		bucket, prefix string
		err            bool
	}{
		{in: "s3://audit", bucket: "audit"},
		{in: "s3://audit/", bucket: "audit"},
		{in: "s3://audit/kubegate", bucket: "audit", prefix: "kubegate/"},
		{in: "s3://audit/kubegate/", bucket: "audit", prefix: "kubegate/"},
		{in: "s3://audit/a/b", bucket: "audit", prefix: "a/b/"},
		{in: "s3://", err: true},
		{in: "s3:///prefix", err: true},
		{in: "audit/prefix", err: true},
		{in: "https://audit/prefix", err: true},
		{in: "s3://user@audit/p", err: true},
		{in: "s3://audit?x=1", err: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			bucket, prefix, err := ParseS3URL(tc.in)
			if tc.err {
				if err == nil {
					t.Fatalf("ParseS3URL(%q) = %q, %q; want an error", tc.in, bucket, prefix)
				}
				return
			}
			if err != nil || bucket != tc.bucket || prefix != tc.prefix {
				t.Fatalf("ParseS3URL(%q) = %q, %q, %v; want %q, %q", tc.in, bucket, prefix, err, tc.bucket, tc.prefix)
			}
		})
	}
}
