package upgrade

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/spdystream"
	"k8s.io/client-go/rest"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
)

// pfPairStream is one stream a fuzzed port-forward client opens: the
// headers client-go sends, any of them possibly wrong or missing.
type pfPairStream struct {
	streamType, port, requestID string
}

// Choices the fuzzer's bytes pick from: valid values, and the mistakes a
// client can make.
var (
	pfPairTypes      = []string{portforward.StreamTypeData, portforward.StreamTypeError, "", "resize", "DATA"}
	pfPairPorts      = []string{"8080", "22", "65535", "0", "65536", "-1", "", "80a", " 80"}
	pfPairRequestIDs = []string{"0", "1", "2", "", "x"}
)

// pfPairStreams decodes up to 12 streams, three bytes each.
func pfPairStreams(b []byte) []pfPairStream {
	var out []pfPairStream
	for ; len(b) >= 3 && len(out) < 12; b = b[3:] {
		out = append(out, pfPairStream{
			streamType: pfPairTypes[int(b[0])%len(pfPairTypes)],
			port:       pfPairPorts[int(b[1])%len(pfPairPorts)],
			requestID:  pfPairRequestIDs[int(b[2])%len(pfPairRequestIDs)],
		})
	}
	return out
}

// pfPairNoDuplicates leaves out every valid stream whose type and request
// id an earlier one had. This fuzzer found that a duplicate can hang the
// session for good: cri-streaming's accept loop writes its complaint to
// the pair's error stream, and that write waits for a reply spdystream
// sends only once the accept loop takes the next stream. The hang is
// cri-streaming's (k8s.io/cri-streaming v0.37.2 portforward/httpstream.go,
// httpStreamHandler.run and httpStreamPair.printError); until it is dealt
// with, duplicates are not sent.
func pfPairNoDuplicates(streams []pfPairStream) []pfPairStream {
	seen := map[string]bool{}
	var out []pfPairStream
	for _, s := range streams {
		n, err := strconv.ParseUint(s.port, 10, 16)
		valid := err == nil && n >= 1 && (s.streamType == portforward.StreamTypeData || s.streamType == portforward.StreamTypeError)
		if valid {
			id, rid := 2*len(out)+1, s.requestID
			if rid == "" {
				rid = strconv.Itoa(id)
				if s.streamType == portforward.StreamTypeData {
					rid = strconv.Itoa(id - 2)
				}
			}
			if seen[s.streamType+"/"+rid] {
				continue
			}
			seen[s.streamType+"/"+rid] = true
		}
		out = append(out, s)
	}
	return out
}

// pfPairModel is what cri-streaming's pairing, as documented, makes of
// streams opened in order (stream ids 1, 3, 5, ...): a stream with a port
// of 1 to 65535 and a type of data or error is paired with the other type
// by requestID (without one, an error stream's id is its own stream id, a
// data stream's its id minus 2); each pair is one forwarded connection to
// the data stream's port. certain are the ports of request ids with
// exactly one stream of each type; most is how many pairs there can be.
func pfPairModel(streams []pfPairStream) (certain []int32, valid map[int32]int, most int) {
	type group struct {
		data, errs []int32
	}
	groups := map[string]*group{}
	var order []string
	valid = map[int32]int{}
	for i, s := range streams {
		n, err := strconv.ParseUint(s.port, 10, 16)
		if err != nil || n < 1 || s.streamType != portforward.StreamTypeData && s.streamType != portforward.StreamTypeError {
			continue
		}
		id, rid := 2*i+1, s.requestID
		if rid == "" {
			rid = strconv.Itoa(id)
			if s.streamType == portforward.StreamTypeData {
				rid = strconv.Itoa(id - 2)
			}
		}
		g := groups[rid]
		if g == nil {
			g = &group{}
			groups[rid] = g
			order = append(order, rid)
		}
		if s.streamType == portforward.StreamTypeData {
			g.data = append(g.data, int32(n))
			valid[int32(n)]++
		} else {
			g.errs = append(g.errs, int32(n))
		}
	}
	for _, rid := range order {
		g := groups[rid]
		most += min(len(g.data), len(g.errs))
		if len(g.data) == 1 && len(g.errs) == 1 {
			certain = append(certain, g.data[0])
		}
	}
	return certain, valid, most
}

// pfPairSession records what ServePortForward did in one fuzzed session.
type pfPairSession struct {
	mu      sync.Mutex
	allowed []int32 // Allow's calls
	ended   int     // OnConnection's calls
	done    chan struct{}
}

var errPFPairDenied = errors.New("denied by the fuzz test")

// FuzzPortForwardPairing opens any sequence of SPDY streams with any of
// client-go's headers right or wrong on a port-forward served by
// ServePortForward, whose Allow refuses every connection (nothing is
// dialed). Every connection Allow sees is the pair of a data and an error
// stream with the data stream's port; request ids used by exactly one
// stream of each type are always forwarded; there are never more
// connections than pairs; every connection is reported to OnConnection;
// and the session ends when the client goes.
func FuzzPortForwardPairing(f *testing.F) {
	enc := func(ss ...pfPairStream) []byte {
		var b []byte
		for _, s := range ss {
			b = append(b, byte(slices.Index(pfPairTypes, s.streamType)), byte(slices.Index(pfPairPorts, s.port)), byte(slices.Index(pfPairRequestIDs, s.requestID)))
		}
		return b
	}
	data, errs := portforward.StreamTypeData, portforward.StreamTypeError
	f.Add(enc(pfPairStream{errs, "8080", "0"}, pfPairStream{data, "8080", "0"}))                                                               // kubectl
	f.Add(enc(pfPairStream{errs, "8080", ""}, pfPairStream{data, "8080", ""}))                                                                 // an old client
	f.Add(enc(pfPairStream{data, "22", "1"}, pfPairStream{errs, "8080", "1"}))                                                                 // ports differ
	f.Add(enc(pfPairStream{errs, "8080", "0"}, pfPairStream{errs, "8080", "0"}, pfPairStream{data, "8080", "0"}))                              // a duplicate
	f.Add(enc(pfPairStream{errs, "0", "2"}, pfPairStream{data, "65536", "2"}, pfPairStream{"resize", "8080", "2"}))                            // all wrong
	f.Add(enc(pfPairStream{data, "8080", "x"}, pfPairStream{errs, "22", "1"}, pfPairStream{data, "65535", "1"}))                               // interleaved
	f.Add(enc(pfPairStream{errs, "8080", "0"}, pfPairStream{data, "8080", "0"}, pfPairStream{errs, "22", "0"}, pfPairStream{data, "22", "0"})) // reused id

	var cur *pfPairSession // the running session; fuzz runs are sequential
	var curMu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		curMu.Lock()
		s := cur
		curMu.Unlock()
		defer close(s.done)
		u, _ := url.Parse("https://127.0.0.1:1/api/v1/namespaces/dev/pods/web/portforward")
		ServePortForward(w, req, PortForwardConfig{
			Upstream: &rest.Config{Host: "https://127.0.0.1:1"},
			URL:      u,
			Allow: func(port int32) error {
				s.mu.Lock()
				s.allowed = append(s.allowed, port)
				s.mu.Unlock()
				return errPFPairDenied
			},
			OnConnection: func(st PortForwardConnStats) {
				s.mu.Lock()
				s.ended++
				s.mu.Unlock()
				if !errors.Is(st.Err, ErrPortForwardDenied) {
					panic(fmt.Sprintf("connection to %d ended with %v, want a refusal", st.Port, st.Err))
				}
			},
		})
	}))
	f.Cleanup(srv.Close)

	f.Fuzz(func(t *testing.T, b []byte) {
		streams := pfPairNoDuplicates(pfPairStreams(b))
		s := &pfPairSession{done: make(chan struct{})}
		curMu.Lock()
		cur = s
		curMu.Unlock()
		conn, netConn := pfPairDial(t, srv.Listener.Addr().String())
		for _, st := range streams {
			h := http.Header{}
			for k, v := range map[string]string{portforward.StreamType: st.streamType, portforward.PortHeader: st.port, portforward.PortForwardRequestIDHeader: st.requestID} {
				if v != "" {
					h.Set(k, v)
				}
			}
			if _, err := conn.CreateStream(h, nil, false); err != nil {
				t.Fatalf("creating a stream: %v", err)
			}
		}
		certain, valid, most := pfPairModel(streams)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for {
			s.mu.Lock()
			n := len(s.allowed)
			s.mu.Unlock()
			if n >= len(certain) {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%+v: %d connections forwarded, want at least %d (%v)", streams, n, len(certain), certain)
			case <-time.After(time.Millisecond):
			}
		}
		// The client goes: its network connection closes (spdystream's own
		// Close would wait for the streams the server ignored).
		_ = netConn.Close()
		select {
		case <-s.done:
		case <-ctx.Done():
			t.Fatalf("%+v: ServePortForward did not return after the client went", streams)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.allowed) > most {
			t.Fatalf("%+v: %d connections (%v) from at most %d pairs", streams, len(s.allowed), s.allowed, most)
		}
		seen := map[int32]int{}
		for _, p := range s.allowed {
			seen[p]++
			if seen[p] > valid[p] {
				t.Fatalf("%+v: a connection to port %d, which %d data streams name", streams, p, valid[p])
			}
		}
		for _, p := range certain {
			if seen[p]--; seen[p] < 0 {
				t.Fatalf("%+v: no connection to port %d (%v)", streams, p, s.allowed)
			}
		}
		if s.ended != len(s.allowed) {
			t.Fatalf("%+v: %d connections, %d reported", streams, len(s.allowed), s.ended)
		}
	})
}

// pfPairDial opens a SPDY port-forward connection as client-go does, and
// returns it with its network connection.
func pfPairDial(t *testing.T, addr string) (*spdystream.Connection, net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	req := "POST /api/v1/namespaces/dev/pods/web/portforward HTTP/1.1\r\nHost: kubegate\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n" +
		"X-Stream-Protocol-Version: " + portforward.ProtocolV1Name + "\r\nContent-Length: 0\r\n\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || !strings.EqualFold(resp.Header.Get("Upgrade"), "SPDY/3.1") {
		t.Fatalf("upgrade: %s", resp.Status)
	}
	conn, err := spdystream.NewConnection(&readerConn{Conn: c, r: br}, false)
	if err != nil {
		t.Fatal(err)
	}
	go conn.Serve(spdystream.NoOpStreamHandler)
	return conn, c
}
