package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/moat-registry/moat/internal/clientip"
	"github.com/moat-registry/moat/internal/server/localca"
)

// v2 builds a version 2 header.
func v2(cmd, famProto byte, body []byte) []byte {
	b := append([]byte{}, proxyV2Sig...)
	b = append(b, 0x20|cmd, famProto)
	b = binary.BigEndian.AppendUint16(b, uint16(len(body))) //nolint:gosec // test bodies are small
	return append(b, body...)
}

// v2Addrs builds a PROXY TCP header from src to dst, with extra trailing
// bytes (TLVs).
func v2Addrs(src, dst netip.AddrPort, tlv []byte) []byte {
	fam := byte(0x11)
	if src.Addr().Is6() {
		fam = 0x21
	}
	var body []byte
	body = append(body, src.Addr().AsSlice()...)
	body = append(body, dst.Addr().AsSlice()...)
	body = binary.BigEndian.AppendUint16(body, src.Port())
	body = binary.BigEndian.AppendUint16(body, dst.Port())
	return v2(0x1, fam, append(body, tlv...))
}

func TestParseProxyHeader(t *testing.T) {
	ap := netip.MustParseAddrPort
	tcp4 := proxyHeader{Version: 2, Source: ap("192.0.2.1:5000"), Dest: ap("10.0.0.1:443")}
	tcp6 := proxyHeader{Version: 2, Source: ap("[2001:db8::1]:5000"), Dest: ap("[fd00::1]:443")}
	v1tcp4 := tcp4
	v1tcp4.Version = 1
	v1tcp6 := tcp6
	v1tcp6.Version = 1
	tests := []struct {
		name    string
		in      []byte
		want    proxyHeader
		wantErr bool
		rest    string // what must remain unread
	}{
		{name: "v1 TCP4", in: []byte("PROXY TCP4 192.0.2.1 10.0.0.1 5000 443\r\nGET"), want: v1tcp4, rest: "GET"},
		{name: "v1 TCP6", in: []byte("PROXY TCP6 2001:db8::1 fd00::1 5000 443\r\n"), want: v1tcp6},
		{name: "v1 TCP6 mapped source unmapped", in: []byte("PROXY TCP6 ::ffff:192.0.2.1 fd00::1 5000 443\r\n"),
			want: proxyHeader{Version: 1, Source: ap("192.0.2.1:5000"), Dest: ap("[fd00::1]:443")}},
		{name: "v1 UNKNOWN", in: []byte("PROXY UNKNOWN\r\nGET"), want: proxyHeader{Version: 1, Local: true}, rest: "GET"},
		{name: "v1 UNKNOWN with addresses", in: []byte("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"), want: proxyHeader{Version: 1, Local: true}},
		{name: "v1 max length", in: []byte("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
			want: proxyHeader{Version: 1, Source: ap("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"), Dest: ap("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535")}},
		{name: "v1 too long", in: []byte("PROXY UNKNOWN " + strings.Repeat("x", 100) + "\r\n"), wantErr: true},
		{name: "v1 LF only", in: []byte("PROXY TCP4 192.0.2.1 10.0.0.1 5000 443\n"), wantErr: true},
		{name: "v1 IPv6 under TCP4", in: []byte("PROXY TCP4 2001:db8::1 10.0.0.1 5000 443\r\n"), wantErr: true},
		{name: "v1 IPv4 under TCP6", in: []byte("PROXY TCP6 192.0.2.1 fd00::1 5000 443\r\n"), wantErr: true},
		{name: "v1 zoned address", in: []byte("PROXY TCP6 fe80::1%eth0 fd00::1 5000 443\r\n"), wantErr: true},
		{name: "v1 port out of range", in: []byte("PROXY TCP4 192.0.2.1 10.0.0.1 65536 443\r\n"), wantErr: true},
		{name: "v1 port leading zero", in: []byte("PROXY TCP4 192.0.2.1 10.0.0.1 0500 443\r\n"), wantErr: true},
		{name: "v1 port signed", in: []byte("PROXY TCP4 192.0.2.1 10.0.0.1 +500 443\r\n"), wantErr: true},
		{name: "v1 double space", in: []byte("PROXY TCP4  192.0.2.1 10.0.0.1 5000 443\r\n"), wantErr: true},
		{name: "v1 UDP4", in: []byte("PROXY UDP4 192.0.2.1 10.0.0.1 5000 443\r\n"), wantErr: true},
		{name: "v1 truncated", in: []byte("PROXY TCP4 192.0.2.1"), wantErr: true},
		{name: "v2 TCP4", in: append(v2Addrs(ap("192.0.2.1:5000"), ap("10.0.0.1:443"), nil), "GET"...), want: tcp4, rest: "GET"},
		{name: "v2 TCP6", in: v2Addrs(ap("[2001:db8::1]:5000"), ap("[fd00::1]:443"), nil), want: tcp6},
		{name: "v2 TCP4 with TLVs skipped", in: append(v2Addrs(ap("192.0.2.1:5000"), ap("10.0.0.1:443"), []byte{0x05, 0x00, 0x02, 'i', 'd'}), 'X'),
			want: tcp4, rest: "X"},
		{name: "v2 TCP6 mapped source unmapped", in: v2Addrs(ap("[::ffff:192.0.2.1]:5000"), ap("[fd00::1]:443"), nil),
			want: proxyHeader{Version: 2, Source: ap("192.0.2.1:5000"), Dest: ap("[fd00::1]:443")}},
		{name: "v2 LOCAL", in: append(v2(0x0, 0x00, nil), "GET"...), want: proxyHeader{Version: 2, Local: true}, rest: "GET"},
		{name: "v2 LOCAL with addresses ignored", in: v2(0x0, 0x11, make([]byte, 12)), want: proxyHeader{Version: 2, Local: true}},
		{name: "v2 PROXY UNSPEC", in: v2(0x1, 0x00, nil), want: proxyHeader{Version: 2, Local: true}},
		{name: "v2 PROXY unix socket", in: v2(0x1, 0x31, make([]byte, 216)), want: proxyHeader{Version: 2, Local: true}},
		{name: "v2 UDP", in: v2(0x1, 0x12, make([]byte, 12)), wantErr: true},
		{name: "v2 unknown family", in: v2(0x1, 0x41, make([]byte, 12)), wantErr: true},
		{name: "v2 unknown command", in: v2(0x2, 0x11, make([]byte, 12)), wantErr: true},
		{name: "v2 version 1 in binary", in: append(append([]byte{}, proxyV2Sig...), 0x11, 0x11, 0, 0), wantErr: true},
		{name: "v2 TCP4 too short", in: v2(0x1, 0x11, make([]byte, 11)), wantErr: true},
		{name: "v2 TCP6 too short", in: v2(0x1, 0x21, make([]byte, 35)), wantErr: true},
		{name: "v2 length beyond data", in: append(append([]byte{}, proxyV2Sig...), 0x21, 0x11, 0, 40, 1, 2, 3), wantErr: true},
		{name: "v2 bad signature", in: append([]byte("\r\n\r\n\x00\r\nQUIX\n"), 0x21, 0x11, 0, 0), wantErr: true},
		{name: "no header", in: []byte("GET / HTTP/1.1\r\n"), wantErr: true},
		{name: "empty", in: nil, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReader(bytes.NewReader(tt.in))
			got, err := parseProxyHeader(br)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parsed %+v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			rest, _ := io.ReadAll(br)
			if string(rest) != tt.rest {
				t.Fatalf("left %q unread, want %q", rest, tt.rest)
			}
		})
	}
}

func TestStartsWithProxySig(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"GET / HTTP/1.1\r\n", false},
		{"PUT /v2/ HTTP/1.1\r\n", false},
		{"PATCH /v2/ HTTP/1.1\r\n", false},
		{"\x16\x03\x01\x02\x00", false}, // a TLS ClientHello
		{"PROXY TCP4 1.2.3.4", true},
		{string(proxyV2Sig) + "\x21", true},
		{"\r\n\r\nGET", false},
	} {
		got, err := startsWithProxySig(bufio.NewReader(strings.NewReader(tt.in)))
		if err != nil || got != tt.want {
			t.Errorf("startsWithProxySig(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	// A prefix that could still be a signature waits for more, and fails
	// when the stream ends.
	if _, err := startsWithProxySig(bufio.NewReader(strings.NewReader("PRO"))); err == nil {
		t.Error("a cut-off signature was decided without its end")
	}
}

// FuzzParseProxyHeader checks that the parser never panics, never reads past
// the header it reports, and returns only valid, unmapped source addresses.
func FuzzParseProxyHeader(f *testing.F) {
	ap := netip.MustParseAddrPort
	for _, s := range [][]byte{
		[]byte("PROXY TCP4 192.0.2.1 10.0.0.1 5000 443\r\n"),
		[]byte("PROXY TCP6 2001:db8::1 fd00::1 5000 443\r\nGET / HTTP/1.1\r\n"),
		[]byte("PROXY UNKNOWN\r\n"),
		[]byte("PROXY TCP4 1.2.3.4 5.6.7.8 0 65536\r\n"),
		v2Addrs(ap("192.0.2.1:5000"), ap("10.0.0.1:443"), nil),
		v2Addrs(ap("[2001:db8::1]:5000"), ap("[fd00::1]:443"), []byte{1, 0, 2, 'h', '2'}),
		v2(0x0, 0x00, nil),
		v2(0x1, 0x31, make([]byte, 216)),
		v2(0x1, 0x21, make([]byte, 10)),
		append(append([]byte{}, proxyV2Sig...), 0x21, 0x11, 0xff, 0xff),
		[]byte("GET / HTTP/1.1\r\n"),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		br := bufio.NewReader(r)
		h, err := parseProxyHeader(br)
		if err != nil {
			return
		}
		if h.Version != 1 && h.Version != 2 {
			t.Fatalf("version %d", h.Version)
		}
		if !h.Local && (!h.Source.IsValid() || h.Source.Addr().Is4In6() || h.Source.Addr().Zone() != "") {
			t.Fatalf("source %v", h.Source)
		}
		consumed := len(in) - r.Len() - br.Buffered()
		if consumed > proxyV2HeaderLen+65535 || (h.Version == 1 && consumed > proxyV1MaxLen) {
			t.Fatalf("consumed %d bytes for a v%d header", consumed, h.Version)
		}
	})
}

// serveProxy runs a server with the PROXY protocol on, trusting trusted,
// whose plane answers with the client address it saw.
func serveProxy(t *testing.T, trusted string, timeout time.Duration) string {
	t.Helper()
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, _ := clientip.From(r.Context())
		_, _ = io.WriteString(w, a.String())
	})
	s := newServer(t, Config{
		TrustedProxies:    []netip.Prefix{netip.MustParsePrefix(trusted)},
		ProxyProtocol:     true,
		ReadHeaderTimeout: timeout,
	}, echo)
	ln := listenLoopback(t)
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			t.Error(err)
		}
	})
	return ln.Addr().String()
}

// dialFrom connects to addr from the loopback address from.
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// roundTrip writes pre then a GET and returns the response body, or an
// error when the server closed the connection.
func roundTrip(c net.Conn, pre []byte) (string, error) {
	req := append(append([]byte{}, pre...), "GET /v2/ HTTP/1.1\r\nHost: moat\r\nConnection: close\r\n\r\n"...)
	if _, err := c.Write(req); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestProxyProtocolThroughListener(t *testing.T) {
	addr := serveProxy(t, "127.0.0.2/32", 2*time.Second)
	claim := v2Addrs(netip.MustParseAddrPort("127.0.0.9:4000"), netip.MustParseAddrPort(addr), nil)

	t.Run("trusted proxy's v2 header is believed", func(t *testing.T) {
		got, err := roundTrip(dialFrom(t, "127.0.0.2", addr), claim)
		if err != nil {
			t.Fatal(err)
		}
		if got != "127.0.0.9" {
			t.Fatalf("client seen as %q, want 127.0.0.9", got)
		}
	})
	t.Run("trusted proxy's v1 header is believed", func(t *testing.T) {
		got, err := roundTrip(dialFrom(t, "127.0.0.2", addr), []byte("PROXY TCP4 127.0.0.8 127.0.0.1 4000 443\r\n"))
		if err != nil || got != "127.0.0.8" {
			t.Fatalf("client seen as %q (%v), want 127.0.0.8", got, err)
		}
	})
	t.Run("trusted proxy's LOCAL header keeps its address", func(t *testing.T) {
		got, err := roundTrip(dialFrom(t, "127.0.0.2", addr), v2(0x0, 0x00, nil))
		if err != nil || got != "127.0.0.2" {
			t.Fatalf("client seen as %q (%v), want 127.0.0.2", got, err)
		}
	})
	t.Run("trusted proxy without a header is refused", func(t *testing.T) {
		if got, err := roundTrip(dialFrom(t, "127.0.0.2", addr), nil); err == nil {
			t.Fatalf("served %q without a header", got)
		}
	})
	t.Run("untrusted peer's header is refused", func(t *testing.T) {
		if got, err := roundTrip(dialFrom(t, "127.0.0.3", addr), claim); err == nil {
			t.Fatalf("untrusted peer with a header served as %q", got)
		}
	})
	t.Run("untrusted peer's v1 header is refused", func(t *testing.T) {
		if got, err := roundTrip(dialFrom(t, "127.0.0.3", addr), []byte("PROXY TCP4 127.0.0.9 127.0.0.1 4000 443\r\n")); err == nil {
			t.Fatalf("untrusted peer with a header served as %q", got)
		}
	})
	t.Run("untrusted peer without a header is served as itself", func(t *testing.T) {
		got, err := roundTrip(dialFrom(t, "127.0.0.3", addr), nil)
		if err != nil || got != "127.0.0.3" {
			t.Fatalf("client seen as %q (%v), want 127.0.0.3", got, err)
		}
	})
	t.Run("X-Forwarded-For is read when the header names a trusted proxy", func(t *testing.T) {
		c := dialFrom(t, "127.0.0.2", addr)
		hdr := v2Addrs(netip.MustParseAddrPort("127.0.0.2:4000"), netip.MustParseAddrPort(addr), nil)
		req := append(hdr, "GET /v2/ HTTP/1.1\r\nHost: moat\r\nX-Forwarded-For: 127.0.0.7\r\nConnection: close\r\n\r\n"...)
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if string(b) != "127.0.0.7" {
			t.Fatalf("client seen as %q, want 127.0.0.7", b)
		}
	})
	t.Run("a stalled connection does not hold up others", func(t *testing.T) {
		stalled := dialFrom(t, "127.0.0.2", addr)
		if _, err := stalled.Write([]byte("PROXY ")); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		got, err := roundTrip(dialFrom(t, "127.0.0.2", addr), claim)
		if err != nil || got != "127.0.0.9" || time.Since(start) > time.Second {
			t.Fatalf("client seen as %q (%v) after %s", got, err, time.Since(start))
		}
	})
	t.Run("X-Forwarded-For from the header's client is not believed", func(t *testing.T) {
		c := dialFrom(t, "127.0.0.2", addr)
		req := append(claim, "GET /v2/ HTTP/1.1\r\nHost: moat\r\nX-Forwarded-For: 127.0.0.7\r\nConnection: close\r\n\r\n"...)
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if string(b) != "127.0.0.9" {
			t.Fatalf("client seen as %q, want 127.0.0.9", b)
		}
	})
}

func TestProxyProtocolHeaderTimeout(t *testing.T) {
	addr := serveProxy(t, "127.0.0.2/32", 200*time.Millisecond)
	c := dialFrom(t, "127.0.0.2", addr)
	if _, err := c.Write([]byte("PROXY TCP4 127.0.0.9")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) || time.Since(start) > 5*time.Second {
		t.Fatalf("a stalled header was not cut off: %v after %s", err, time.Since(start))
	}
}

func TestNewRejectsProxyProtocolWithoutTrustedProxies(t *testing.T) {
	if _, err := New(Config{ProxyProtocol: true}, &plane{}); err == nil {
		t.Fatal("PROXY protocol without trusted proxies accepted")
	}
}

// TestProxyProtocolBeforeTLS: the header comes before the TLS handshake, as
// haproxy sends it in TCP mode, and the client inside it reaches the plane.
func TestProxyProtocolBeforeTLS(t *testing.T) {
	ca, err := localca.Load(t.TempDir(), []string{"localhost", "127.0.0.1"}, localca.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, _ := clientip.From(r.Context())
		_, _ = io.WriteString(w, a.String())
	})
	s := newServer(t, Config{
		TLS:            TLSConfig(ca.GetCertificate),
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")},
		ProxyProtocol:  true,
	}, echo)
	ln := listenLoopback(t)
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	defer func() {
		stop()
		if err := <-served; err != nil {
			t.Error(err)
		}
	}()
	c := dialFrom(t, "127.0.0.2", ln.Addr().String())
	if _, err := c.Write(v2Addrs(netip.MustParseAddrPort("[2001:db8::9]:4000"), netip.MustParseAddrPort("[::1]:443"), nil)); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.CACertificate())
	got, err := roundTrip(tls.Client(c, &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}), nil)
	if err != nil || got != "2001:db8::9" {
		t.Fatalf("client seen as %q (%v), want 2001:db8::9", got, err)
	}
}
