package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/kubegate/kubegate/internal/testkubelet"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "testkubelet:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		kubeconfig = flag.String("kubeconfig", "", "kubeconfig for the apiserver (required)")
		nodeName   = flag.String("node-name", "testnode", "name of the Node to register")
		listen     = flag.String("listen", "127.0.0.1:0", "address of the kubelet server")
		certFile   = flag.String("tls-cert-file", "", "serving certificate (required)")
		keyFile    = flag.String("tls-private-key-file", "", "serving key (required)")
		clientCA   = flag.String("client-ca-file", "", "CA that signs the apiserver's client certificate; when set, clients must present one")
		root       = flag.String("root-dir", "", "directory for container working directories and logs (required)")
		verbose    = flag.Bool("v", false, "log debug messages")
	)
	flag.Parse()
	if *kubeconfig == "" || *certFile == "" || *keyFile == "" || *root == "" {
		return errors.New("--kubeconfig, --tls-cert-file, --tls-private-key-file and --root-dir are required")
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		return fmt.Errorf("loading serving certificate: %w", err)
	}
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	if *clientCA != "" {
		pem, err := os.ReadFile(*clientCA)
		if err != nil {
			return fmt.Errorf("reading client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return errors.New("client CA file holds no certificate")
		}
		tlsConfig.ClientCAs = pool
		tlsConfig.ClientAuth = tls.RequireAndVerifyClientCert
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	port := ln.Addr().(*net.TCPAddr).Port

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	rt := testkubelet.NewRuntime(*root, log)
	srv := &http.Server{Handler: rt.Handler(), TLSConfig: tlsConfig, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() {
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("kubelet server stopped", "err", err)
			stop()
		}
	}()
	log.Info("test kubelet serving", "node", *nodeName, "port", port)
	node := &testkubelet.Node{Name: *nodeName, Port: int32(port), Client: client, Runtime: rt, Log: log}
	return node.Run(ctx)
}
