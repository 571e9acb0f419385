package s3test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

func TestServerRestartKeepsData(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv := StartT(t, ctx)

	if err := srv.CreateBucket(ctx, "kubegate-test"); err != nil {
		t.Fatal(err)
	}
	c := srv.Client()
	put := func() error {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("kubegate-test"), Key: aws.String("k"), Body: bytes.NewReader([]byte("v"))})
		return err
	}
	if err := put(); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	if err := put(); err == nil {
		t.Fatal("Put to a stopped server succeeded")
	}
	srv.Stop() // stopping twice does nothing

	endpoint := srv.Endpoint
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if srv.Endpoint != endpoint {
		t.Fatalf("endpoint after restart = %s, want %s", srv.Endpoint, endpoint)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("kubegate-test"), Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil || string(b) != "v" {
		t.Fatalf("object after restart = %q, %v; want \"v\"", b, err)
	}
}

func TestWrongCredentialsRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := StartT(t, ctx)
	other := &Server{Endpoint: srv.Endpoint, AccessKey: srv.AccessKey, SecretKey: "wrong" + srv.SecretKey}
	err := other.CreateBucket(ctx, "kubegate-test")
	if apiErr, ok := errors.AsType[smithy.APIError](err); !ok || apiErr.ErrorCode() != "SignatureDoesNotMatch" {
		t.Fatalf("CreateBucket with a wrong secret: %v, want SignatureDoesNotMatch", err)
	}
}
