package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubegate/kubegate/audit"
)

var sinkName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// validateSinks checks the sinks and fills in defaults. dir is the audit
// file's folder.
func (a *AuditConfig) validateSinks(dir string) error {
	if a.Spool.StateDir == "" {
		a.Spool.StateDir = filepath.Join(dir, "spool")
	}
	if a.Spool.MaxBacklogBytes == 0 {
		a.Spool.MaxBacklogBytes = 1 << 30
	}
	switch a.Spool.OnFull {
	case "":
		a.Spool.OnFull = "fail-closed"
	case "fail-closed", "drop-oldest":
	default:
		return fmt.Errorf("audit.spool.onFull %q: want fail-closed or drop-oldest", a.Spool.OnFull)
	}
	names := map[string]bool{}
	for i := range a.Sinks {
		s := &a.Sinks[i]
		switch {
		case (s.Webhook == nil) == (s.S3 == nil):
			return fmt.Errorf("audit.sinks[%d]: want exactly one of webhook and s3", i)
		case s.Webhook != nil && s.Webhook.URL == "":
			return fmt.Errorf("audit.sinks[%d].webhook.url is required", i)
		case s.S3 != nil && s.S3.Bucket == "":
			return fmt.Errorf("audit.sinks[%d].s3.bucket is required", i)
		case s.S3 != nil && (s.S3.AccessKeyIDFile == "") != (s.S3.SecretAccessKeyFile == ""):
			return fmt.Errorf("audit.sinks[%d].s3: accessKeyIDFile and secretAccessKeyFile go together", i)
		}
		if s.Name == "" {
			s.Name = "webhook"
			if s.S3 != nil {
				s.Name = "s3"
			}
		}
		if !sinkName.MatchString(s.Name) {
			return fmt.Errorf("audit.sinks[%d].name %q: want lower case letters, digits and dashes", i, s.Name)
		}
		if names[s.Name] {
			return fmt.Errorf("audit.sinks[%d].name %q is used twice", i, s.Name)
		}
		names[s.Name] = true
	}
	return nil
}

// openSpool opens the local audit log and the sinks it drains to.
func openSpool(ctx context.Context, cfg *Config, reg prometheus.Registerer, log *slog.Logger) (*audit.Spool, error) {
	var sinks []audit.BatchSink
	for _, sc := range cfg.Audit.Sinks {
		s, err := newBatchSink(ctx, sc)
		if err != nil {
			return nil, fmt.Errorf("audit sink %s: %w", sc.Name, err)
		}
		sinks = append(sinks, s)
	}
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kubegate_audit_dropped_events_total",
		Help: "Audit events a sink never received because its backlog passed audit.spool.maxBacklogBytes (onFull: drop-oldest).",
	}, []string{"sink"})
	f := cfg.Audit.File
	spool, err := audit.NewSpool(audit.SpoolConfig{
		File: audit.FileConfig{Path: f.Path, MaxSizeBytes: f.MaxSizeBytes, MaxAge: time.Duration(f.MaxAge), Fsync: f.Fsync,
			FsyncInterval: time.Duration(f.FsyncInterval), Node: cfg.Cluster.NodeID},
		Retention:  time.Duration(f.Retention),
		StateDir:   cfg.Audit.Spool.StateDir,
		Sinks:      sinks,
		MaxBacklog: max(cfg.Audit.Spool.MaxBacklogBytes, 0),
		DropOldest: cfg.Audit.Spool.OnFull == "drop-oldest",
		OnDrop:     func(sink string, n int) { dropped.WithLabelValues(sink).Add(float64(n)) },
		Log:        log.With("component", "audit"),
	})
	if err != nil {
		return nil, err
	}
	reg.MustRegister(dropped, newSpoolCollector(spool))
	return spool, nil
}

func newBatchSink(ctx context.Context, sc AuditSinkConfig) (audit.BatchSink, error) {
	if w := sc.Webhook; w != nil {
		client := &http.Client{Timeout: 30 * time.Second}
		if w.CAFile != "" {
			pool, err := certPool(w.CAFile)
			if err != nil {
				return nil, err
			}
			client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
		}
		header := http.Header{}
		if w.BearerTokenFile != "" {
			tok, err := readSecretFile(w.BearerTokenFile)
			if err != nil {
				return nil, err
			}
			header.Set("Authorization", "Bearer "+tok)
		}
		return audit.NewWebhookSink(audit.WebhookConfig{Name: sc.Name, URL: w.URL, Header: header, Client: client})
	}
	s := sc.S3
	c := audit.S3Config{Endpoint: s.Endpoint, Region: s.Region, Bucket: s.Bucket, Prefix: s.Prefix, PathStyle: s.PathStyle, CAFile: s.CAFile}
	if s.AccessKeyIDFile != "" {
		var err error
		if c.AccessKeyID, err = readSecretFile(s.AccessKeyIDFile); err != nil {
			return nil, err
		}
		if c.SecretAccessKey, err = readSecretFile(s.SecretAccessKeyFile); err != nil {
			return nil, err
		}
	}
	store, err := audit.NewS3Store(ctx, c)
	if err != nil {
		return nil, err
	}
	return audit.NewS3Sink(sc.Name, store), nil
}

func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return v, nil
}

func certPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New(path + ": no PEM certificates")
	}
	return pool, nil
}

// spoolCollector exports each sink's progress.
type spoolCollector struct {
	spool             *audit.Spool
	backlog, cursor   *prometheus.Desc
	delivered, failed *prometheus.Desc
}

func newSpoolCollector(s *audit.Spool) *spoolCollector {
	l := []string{"sink"}
	return &spoolCollector{spool: s,
		backlog:   prometheus.NewDesc("kubegate_audit_sink_backlog_bytes", "Bytes of audit events a sink has not stored yet.", l, nil),
		cursor:    prometheus.NewDesc("kubegate_audit_sink_cursor", "The sequence number of the last event a sink stored.", l, nil),
		delivered: prometheus.NewDesc("kubegate_audit_sink_delivered_events", "Events a sink stored since start.", l, nil),
		failed:    prometheus.NewDesc("kubegate_audit_sink_failing", "1 while a sink's last send failed.", l, nil),
	}
}

func (c *spoolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.backlog
	ch <- c.cursor
	ch <- c.delivered
	ch <- c.failed
}

func (c *spoolCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.spool.Status() {
		failing := 0.0
		if st.Err != nil {
			failing = 1
		}
		ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(st.Backlog), st.Sink)
		ch <- prometheus.MustNewConstMetric(c.cursor, prometheus.GaugeValue, float64(st.Cursor), st.Sink)
		ch <- prometheus.MustNewConstMetric(c.delivered, prometheus.CounterValue, float64(st.Delivered), st.Sink)
		ch <- prometheus.MustNewConstMetric(c.failed, prometheus.GaugeValue, failing, st.Sink)
	}
}
