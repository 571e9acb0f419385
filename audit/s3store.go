package audit

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// S3Config says where an S3Store keeps its objects. The zero value of every
// field but Bucket means something; it is validated once by NewS3Store.
type S3Config struct {
	// Endpoint is the base URL of an S3-compatible server, such as
	// "https://minio.example:9000". "" means AWS S3, at the endpoint the
	// SDK derives from Region.
	Endpoint string
	// Region is the bucket's region, used in request signatures. "" means
	// "us-east-1".
	Region string
	// Bucket holds the objects. Required.
	Bucket string
	// Prefix is put before every key: the store keeps key k as Prefix+k,
	// and lists and yields keys without it. Usually it ends in "/". ""
	// keeps keys as they are.
	Prefix string
	// AccessKeyID and SecretAccessKey are static credentials, both set or
	// both "". "" means the SDK's default chain: environment, shared
	// config and credentials files, web identity, container or instance
	// role. The secret never appears in String or in errors.
	AccessKeyID, SecretAccessKey string
	// PathStyle addresses buckets in the path (endpoint/bucket/key) rather
	// than in the host name (bucket.endpoint/key). Most self-hosted
	// servers need it. false means virtual-hosted style, as AWS prefers.
	PathStyle bool
	// CAFile is a PEM bundle of certificate authorities trusted for the
	// endpoint besides the system's, for a private endpoint. "" means the
	// system's only.
	CAFile string
}

// String describes the configuration for logs and errors, without the
// secret.
func (c S3Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "s3://%s/%s (", c.Bucket, c.Prefix)
	if c.Endpoint == "" {
		b.WriteString("AWS")
	} else {
		fmt.Fprintf(&b, "endpoint %s", c.Endpoint)
	}
	fmt.Fprintf(&b, ", region %s", c.region())
	if c.PathStyle {
		b.WriteString(", path-style")
	}
	if c.AccessKeyID != "" || c.SecretAccessKey != "" {
		fmt.Fprintf(&b, ", access key %q", c.AccessKeyID)
		if c.SecretAccessKey != "" {
			b.WriteString(" with its secret")
		}
	} else {
		b.WriteString(", default credential chain")
	}
	if c.CAFile != "" {
		fmt.Fprintf(&b, ", CA file %s", c.CAFile)
	}
	b.WriteString(")")
	return b.String()
}

// GoString keeps the secret out of %#v.
func (c S3Config) GoString() string { return "audit.S3Config{" + c.String() + "}" }

// LogValue keeps the secret out of slog output, JSON included.
func (c S3Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

func (c S3Config) region() string {
	if c.Region == "" {
		return "us-east-1"
	}
	return c.Region
}

// ParseS3URL splits "s3://bucket/prefix" into the bucket and the prefix for
// an S3Config. A prefix that does not end in "/" gets one, so that
// s3://b/audit keeps its objects under "audit/"; s3://b and s3://b/ have
// the prefix "".
func ParseS3URL(s string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(s, "s3://")
	if !ok {
		return "", "", fmt.Errorf("S3 URL %q: want s3://bucket/prefix", s)
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("S3 URL %q: no bucket", s)
	}
	if strings.ContainsAny(bucket, "?#@:\\ ") {
		return "", "", fmt.Errorf("S3 URL %q: %q is not a bucket name", s, bucket)
	}
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return bucket, prefix, nil
}

// s3PartSize is the size of each part of a multipart upload; objects
// larger than one part go up in parts.
const s3PartSize = 8 << 20

// s3UploadConcurrency is how many parts of one object go up at once. Each
// takes a part-sized buffer when the reader cannot be read at an offset.
const s3UploadConcurrency = 2

// S3Store is an ObjectStore in an S3 bucket, on AWS or an S3-compatible
// server. It is safe for concurrent use.
type S3Store struct {
	client   *s3.Client
	uploader *manager.Uploader
	bucket   string
	prefix   string

	// listPageSize is the most keys one List request asks for; 0 leaves
	// it to the server (1,000 on S3). Tests make it small.
	listPageSize int32
}

var _ ObjectStore = (*S3Store)(nil)

// NewS3Store validates cfg and returns a store for it. It does not contact
// the server, so it succeeds while the server is down.
func NewS3Store(ctx context.Context, cfg S3Config) (*S3Store, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("S3 store: a bucket is required")
	}
	if (cfg.AccessKeyID == "") != (cfg.SecretAccessKey == "") {
		return nil, fmt.Errorf("S3 store %s: set both the access key and its secret, or neither", cfg)
	}
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("S3 store %s: the endpoint must be an http or https URL", cfg)
		}
	}
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(cfg.region()),
		// The caller (a sink draining its spool) waits and tries again
		// itself; the SDK's retry quota would only make calls after an
		// outage fail without being tried.
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) { o.RateLimiter = ratelimit.None })
		}),
	}
	if cfg.AccessKeyID != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, "")))
	}
	if cfg.CAFile != "" {
		pool, err := caPool(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("S3 store %s: %w", cfg, err)
		}
		opts = append(opts, config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			if t.TLSClientConfig == nil {
				t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			}
			t.TLSClientConfig.RootCAs = pool
		})))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("S3 store %s: loading the AWS configuration: %w", cfg, err)
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		// A multipart object has no whole-object checksum to validate on
		// Get; the SDK would log that to stderr on every such Get.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	return &S3Store{
		client: client,
		uploader: manager.NewUploader(client, func(u *manager.Uploader) {
			u.PartSize = s3PartSize
			u.Concurrency = s3UploadConcurrency
		}),
		bucket: cfg.Bucket,
		prefix: cfg.Prefix,
	}, nil
}

// caPool is the system's certificate pool plus the certificates in file.
func caPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading the CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", file)
	}
	return pool, nil
}

// url names an object in errors.
func (s *S3Store) url(key string) string {
	return "s3://" + s.bucket + "/" + s.prefix + key
}

// Put stores size bytes from r under key, replacing any object there.
// Objects larger than 8 MiB go up in 8 MiB parts; a failed multipart
// upload is aborted. If r ends before size bytes, Put fails and stores
// nothing; bytes after the first size are not read. A negative size reads r
// to its end.
func (s *S3Store) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if key == "" {
		return errors.New("S3 put: empty key")
	}
	body, err := sizedBody(r, size)
	if err != nil {
		return fmt.Errorf("S3 put %s: %w", s.url(key), err)
	}
	_, err = s.uploader.Upload(ctx, &s3.PutObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.prefix + key),
		Body:   body,
	})
	if err != nil {
		return fmt.Errorf("S3 put %s: %w", s.url(key), err)
	}
	return nil
}

// readSeekerAt is a body the uploader reads at offsets, without buffering.
type readSeekerAt interface {
	io.ReaderAt
	io.Seeker
}

// sizedBody is r limited to size bytes, failing if it holds fewer.
func sizedBody(r io.Reader, size int64) (io.Reader, error) {
	if size < 0 {
		return r, nil
	}
	if rs, ok := r.(readSeekerAt); ok {
		pos, err := rs.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, err
		}
		end, err := rs.Seek(0, io.SeekEnd)
		if err != nil {
			return nil, err
		}
		if _, err := rs.Seek(pos, io.SeekStart); err != nil {
			return nil, err
		}
		if end-pos < size {
			return nil, fmt.Errorf("the body holds %d bytes, want %d", end-pos, size)
		}
		return io.NewSectionReader(rs, pos, size), nil
	}
	return &exactReader{r: r, left: size}, nil
}

// exactReader reads exactly left bytes from r: an early end is
// io.ErrUnexpectedEOF, and nothing after them is read.
type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF {
		if e.left > 0 {
			return n, fmt.Errorf("the body ended %d bytes short: %w", e.left, io.ErrUnexpectedEOF)
		}
		err = nil
	}
	if e.left == 0 && err == nil {
		err = io.EOF
	}
	return n, err
}

// Get opens the object under key. A missing key is ErrObjectNotFound.
func (s *S3Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.prefix + key),
	})
	if err != nil {
		if isNoSuchKey(err) {
			return nil, fmt.Errorf("S3 get %s: %w", s.url(key), ErrObjectNotFound)
		}
		return nil, fmt.Errorf("S3 get %s: %w", s.url(key), err)
	}
	return out.Body, nil
}

// isNoSuchKey tells a missing object from a missing bucket, which is a
// configuration error, not an absent key.
func isNoSuchKey(err error) bool {
	apiErr, ok := errors.AsType[smithy.APIError](err)
	if !ok {
		return false
	}
	switch apiErr.ErrorCode() {
	case "NoSuchKey", "NotFound":
		return true
	}
	return false
}

// List yields the keys under prefix, without the store's Prefix, in the
// server's order: lexical (by UTF-8 bytes) on S3. It asks for one page of
// keys at a time; an error ends the sequence.
func (s *S3Store) List(ctx context.Context, prefix string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		in := &s3.ListObjectsV2Input{
			Bucket: aws.String(s.bucket),
			Prefix: aws.String(s.prefix + prefix),
		}
		if s.listPageSize > 0 {
			in.MaxKeys = aws.Int32(s.listPageSize)
		}
		pages := s3.NewListObjectsV2Paginator(s.client, in)
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				yield("", fmt.Errorf("S3 list %s: %w", s.url(prefix), err))
				return
			}
			for _, o := range page.Contents {
				if !yield(strings.TrimPrefix(aws.ToString(o.Key), s.prefix), nil) {
					return
				}
			}
		}
	}
}
