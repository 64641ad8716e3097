package server

// PROXY protocol (versions 1 and 2, as haproxy documents them in
// proxy-protocol.txt) on moat's listener.
//
// It is written here rather than taken from a library: the receiving side of
// both versions is a few dozen lines of byte parsing, moat needs a policy no
// library offers as is (a header is believed only from a trusted proxy and
// refused from anyone else), and every byte of it is on the trust boundary, so
// it should be short enough to read whole.
//
// The policy, per connection, decided by the TCP peer's address:
//
//   - A trusted proxy (--trusted-proxies) must start with a header. Its
//     source address becomes the connection's remote address, which the
//     server then resolves like any peer (so X-Forwarded-For is still read
//     only when that address is itself a trusted proxy). A LOCAL (v2) or
//     UNKNOWN (v1) header, or a v2 header without an IP source, keeps the
//     proxy's own address: that is the proxy's health check. A trusted peer
//     without a valid header is closed: a proxy that forgot to send it would
//     otherwise make every client look like the proxy.
//   - Anyone else is served with their own address, and closed if they start
//     with a PROXY header: the header claims an address that only a trusted
//     proxy may vouch for.
//
// The header is read lazily, on the connection's first Read, RemoteAddr or
// deadline call, so that a slow client holds up only its own connection and
// never the accept loop; it must arrive within the read-header timeout.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

var (
	// proxyV1Sig starts a version 1 header.
	proxyV1Sig = []byte("PROXY ")
	// proxyV2Sig starts a version 2 header.
	proxyV2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")
)

const (
	// proxyV1MaxLen is the longest version 1 header, CRLF included.
	proxyV1MaxLen = 107
	// proxyV2HeaderLen is the fixed part of a version 2 header.
	proxyV2HeaderLen = 16
)

// errProxyHeader marks a malformed header.
var errProxyHeader = errors.New("malformed PROXY protocol header")

// proxyHeader is what a PROXY protocol header says.
type proxyHeader struct {
	// Version is 1 or 2.
	Version int
	// Local is true when the header carries no client address (v1 UNKNOWN,
	// v2 LOCAL, or a v2 address family other than IPv4 and IPv6): the
	// connection's own peer address stands.
	Local bool
	// Source and Dest are the client's and the proxy's listening address,
	// valid when Local is false. Source is unmapped.
	Source, Dest netip.AddrPort
}

// parseProxyHeader reads one PROXY protocol header (either version) from br
// and nothing more.
func parseProxyHeader(br *bufio.Reader) (proxyHeader, error) {
	first, err := br.Peek(1)
	if err != nil {
		return proxyHeader{}, fmt.Errorf("reading PROXY protocol header: %w", err)
	}
	switch first[0] {
	case proxyV1Sig[0]:
		return parseProxyV1(br)
	case proxyV2Sig[0]:
		return parseProxyV2(br)
	}
	return proxyHeader{}, fmt.Errorf("%w: no signature", errProxyHeader)
}

// parseProxyV1 reads a text header: "PROXY TCP4|TCP6 src dst sport dport\r\n"
// or "PROXY UNKNOWN…\r\n".
func parseProxyV1(br *bufio.Reader) (proxyHeader, error) {
	line := make([]byte, 0, proxyV1MaxLen)
	for {
		b, err := br.ReadByte()
		if err != nil {
			return proxyHeader{}, fmt.Errorf("reading PROXY protocol v1 header: %w", err)
		}
		line = append(line, b)
		if b == '\n' {
			break
		}
		if len(line) == proxyV1MaxLen {
			return proxyHeader{}, fmt.Errorf("%w: v1 header longer than %d bytes", errProxyHeader, proxyV1MaxLen)
		}
	}
	s, ok := strings.CutSuffix(string(line), "\r\n")
	if !ok || !strings.HasPrefix(s, string(proxyV1Sig)) {
		return proxyHeader{}, fmt.Errorf("%w: v1 header does not end in CRLF", errProxyHeader)
	}
	fields := strings.Split(s[len(proxyV1Sig):], " ")
	if fields[0] == "UNKNOWN" {
		// The rest of the line may be anything and is ignored.
		return proxyHeader{Version: 1, Local: true}, nil
	}
	if len(fields) != 5 {
		return proxyHeader{}, fmt.Errorf("%w: v1 header has %d fields, want 5", errProxyHeader, len(fields))
	}
	var want4 bool
	switch fields[0] {
	case "TCP4":
		want4 = true
	case "TCP6":
	default:
		return proxyHeader{}, fmt.Errorf("%w: v1 protocol %q", errProxyHeader, fields[0])
	}
	var addrs [2]netip.Addr
	var ports [2]uint16
	for i := range 2 {
		a, err := netip.ParseAddr(fields[1+i])
		if err != nil || a.Zone() != "" || a.Is4() != want4 {
			return proxyHeader{}, fmt.Errorf("%w: v1 %s address %q", errProxyHeader, fields[0], fields[1+i])
		}
		p, ok := parseProxyPort(fields[3+i])
		if !ok {
			return proxyHeader{}, fmt.Errorf("%w: v1 port %q", errProxyHeader, fields[3+i])
		}
		addrs[i], ports[i] = a, p
	}
	return proxyHeader{
		Version: 1,
		Source:  netip.AddrPortFrom(addrs[0].Unmap(), ports[0]),
		Dest:    netip.AddrPortFrom(addrs[1].Unmap(), ports[1]),
	}, nil
}

// parseProxyPort parses a decimal port without sign or leading zeros.
func parseProxyPort(s string) (uint16, bool) {
	if s == "" || len(s) > 5 || (s[0] == '0' && s != "0") {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, false
	}
	return uint16(n), true
}

// parseProxyV2 reads a binary header: the signature, version and command,
// address family and transport, length, addresses, then TLVs (skipped).
func parseProxyV2(br *bufio.Reader) (proxyHeader, error) {
	var fixed [proxyV2HeaderLen]byte
	if _, err := io.ReadFull(br, fixed[:]); err != nil {
		return proxyHeader{}, fmt.Errorf("reading PROXY protocol v2 header: %w", err)
	}
	if !bytes.Equal(fixed[:len(proxyV2Sig)], proxyV2Sig) {
		return proxyHeader{}, fmt.Errorf("%w: bad v2 signature", errProxyHeader)
	}
	verCmd, famProto := fixed[12], fixed[13]
	if verCmd>>4 != 2 {
		return proxyHeader{}, fmt.Errorf("%w: v2 version %d", errProxyHeader, verCmd>>4)
	}
	body := make([]byte, binary.BigEndian.Uint16(fixed[14:16]))
	if _, err := io.ReadFull(br, body); err != nil {
		return proxyHeader{}, fmt.Errorf("reading PROXY protocol v2 addresses: %w", err)
	}
	switch verCmd & 0x0f {
	case 0x0: // LOCAL: the proxy speaking for itself (a health check).
		return proxyHeader{Version: 2, Local: true}, nil
	case 0x1: // PROXY
	default:
		return proxyHeader{}, fmt.Errorf("%w: v2 command %d", errProxyHeader, verCmd&0x0f)
	}
	family, transport := famProto>>4, famProto&0x0f
	if family == 0x0 || family == 0x3 {
		// UNSPEC or a unix socket: no IP to report, so the proxy's own
		// address stands, as the specification asks of receivers.
		return proxyHeader{Version: 2, Local: true}, nil
	}
	if transport != 0x1 {
		return proxyHeader{}, fmt.Errorf("%w: v2 transport %d is not a stream", errProxyHeader, transport)
	}
	var size int
	switch family {
	case 0x1:
		size = 4
	case 0x2:
		size = 16
	default:
		return proxyHeader{}, fmt.Errorf("%w: v2 address family %d", errProxyHeader, family)
	}
	if len(body) < 2*size+4 {
		return proxyHeader{}, fmt.Errorf("%w: v2 length %d too short for its addresses", errProxyHeader, len(body))
	}
	src, _ := netip.AddrFromSlice(body[:size])
	dst, _ := netip.AddrFromSlice(body[size : 2*size])
	ports := body[2*size:]
	return proxyHeader{
		Version: 2,
		Source:  netip.AddrPortFrom(src.Unmap(), binary.BigEndian.Uint16(ports[0:2])),
		Dest:    netip.AddrPortFrom(dst.Unmap(), binary.BigEndian.Uint16(ports[2:4])),
	}, nil
}

// startsWithProxySig reports whether the stream starts with either
// version's signature. It asks for one byte more only while what it has
// could still be a signature, so an ordinary client is never waited on for
// bytes it will not send.
func startsWithProxySig(br *bufio.Reader) (bool, error) {
	for n := 1; ; n++ {
		b, err := br.Peek(n)
		if err != nil {
			return false, err
		}
		v1, v2 := bytes.HasPrefix(proxyV1Sig, b), bytes.HasPrefix(proxyV2Sig, b)
		switch {
		case !v1 && !v2:
			return false, nil
		case (v1 && n == len(proxyV1Sig)) || (v2 && n == len(proxyV2Sig)):
			return true, nil
		}
	}
}

// proxyListener applies the PROXY protocol policy to every accepted
// connection.
type proxyListener struct {
	net.Listener
	trusts  func(netip.Addr) bool
	timeout time.Duration
	logger  *slog.Logger
}

func newProxyListener(ln net.Listener, trusts func(netip.Addr) bool, timeout time.Duration, logger *slog.Logger) net.Listener {
	return &proxyListener{Listener: ln, trusts: trusts, timeout: timeout, logger: logger}
}

// Accept returns at once; the header is read by the connection's own
// goroutine (see proxyConn).
func (l *proxyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &proxyConn{Conn: c, l: l}, nil
}

// proxyConn is an accepted connection whose header is read on first use.
// After that its fields never change.
type proxyConn struct {
	net.Conn
	l      *proxyListener
	once   sync.Once
	rd     io.Reader // the bytes after the header
	remote net.Addr
	err    error // why the connection was refused; it is closed then
}

func (c *proxyConn) start() { c.once.Do(c.readHeader) }

func (c *proxyConn) readHeader() {
	c.remote = c.Conn.RemoteAddr()
	c.rd = c.Conn
	peer := addrOf(c.remote)
	trusted := peer.IsValid() && c.l.trusts(peer)
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.l.timeout)); err != nil {
		c.refuse(peer, fmt.Errorf("setting the PROXY header deadline: %w", err), slog.LevelDebug)
		return
	}
	// The buffer only ever holds the header and whatever arrived with it.
	br := bufio.NewReaderSize(c.Conn, 256)
	if trusted {
		h, err := parseProxyHeader(br)
		if err != nil {
			c.refuse(peer, fmt.Errorf("trusted proxy did not send a valid PROXY protocol header: %w", err), slog.LevelWarn)
			return
		}
		if !h.Local {
			c.remote = net.TCPAddrFromAddrPort(h.Source)
		}
	} else {
		spoof, err := startsWithProxySig(br)
		if err != nil {
			c.refuse(peer, fmt.Errorf("reading the first bytes: %w", err), slog.LevelDebug)
			return
		}
		if spoof {
			c.refuse(peer, errors.New("a peer that is not a trusted proxy sent a PROXY protocol header"), slog.LevelWarn)
			return
		}
	}
	if err := c.Conn.SetReadDeadline(time.Time{}); err != nil {
		c.refuse(peer, fmt.Errorf("clearing the PROXY header deadline: %w", err), slog.LevelDebug)
		return
	}
	if n := br.Buffered(); n > 0 {
		rest, _ := br.Peek(n) // cannot fail: n bytes are buffered
		c.rd = io.MultiReader(bytes.NewReader(bytes.Clone(rest)), c.Conn)
	}
}

// refuse closes the connection; every later Read returns err.
func (c *proxyConn) refuse(peer netip.Addr, err error, level slog.Level) {
	c.err = err
	c.l.logger.Log(context.Background(), level, "connection refused", "peer", peer, "error", err)
	_ = c.Close() // refusing: the close error adds nothing
}

func (c *proxyConn) Read(p []byte) (int, error) {
	c.start()
	if c.err != nil {
		return 0, c.err
	}
	return c.rd.Read(p)
}

// RemoteAddr is the client's address from the header, or the peer's own.
func (c *proxyConn) RemoteAddr() net.Addr {
	c.start()
	return c.remote
}

// The deadline setters wait for the header, so that the deadline it is read
// under never replaces one set by the HTTP server.

func (c *proxyConn) SetDeadline(t time.Time) error {
	c.start()
	return c.Conn.SetDeadline(t)
}

func (c *proxyConn) SetReadDeadline(t time.Time) error {
	c.start()
	return c.Conn.SetReadDeadline(t)
}

// addrOf returns the IP of a TCP address, unmapped; invalid otherwise.
func addrOf(a net.Addr) netip.Addr {
	if a == nil {
		return netip.Addr{}
	}
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}
