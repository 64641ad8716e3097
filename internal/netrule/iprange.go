package netrule

import (
	"container/heap"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// u128 is an IPv6 address (or an IPv4 address in its IPv4-mapped form
// ::ffff:a.b.c.d) as a 128-bit unsigned integer.
type u128 struct{ hi, lo uint64 }

var maxU128 = u128{^uint64(0), ^uint64(0)}

func u128From16(b [16]byte) u128 {
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func (a u128) less(b u128) bool { return a.hi < b.hi || a.hi == b.hi && a.lo < b.lo }

// next returns a+1; callers never pass maxU128.
func (a u128) next() u128 {
	if a.lo == ^uint64(0) {
		return u128{a.hi + 1, 0}
	}
	return u128{a.hi, a.lo + 1}
}

// The IPv4-mapped block ::ffff:0.0.0.0/96, where IPv4 rules and IPv4
// clients live in the single 128-bit space the tables are built from.
var (
	mappedLo = u128{0, 0x0000_ffff_0000_0000}
	mappedHi = u128{0, 0x0000_ffff_ffff_ffff}
)

// parseRule reads one ipRules value: an IPv4 or IPv6 address or CIDR,
// exactly the values model.Validate accepts. Host bits after the prefix
// length are masked off ("10.1.2.3/8" is 10.0.0.0/8), as netip and ACR read
// them. The result is the rule's inclusive range in the 128-bit space.
func parseRule(s string) (lo, hi u128, err error) {
	if s == "" {
		return lo, hi, fmt.Errorf("empty value")
	}
	if strings.TrimSpace(s) != s {
		return lo, hi, fmt.Errorf("leading or trailing space")
	}
	var p netip.Prefix
	if strings.Contains(s, "/") {
		p, err = netip.ParsePrefix(s)
		if err != nil {
			return lo, hi, err
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return lo, hi, err
		}
		if a.Zone() != "" {
			return lo, hi, fmt.Errorf("an IPv6 zone is not allowed")
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	p = p.Masked()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96 // As16 gives the IPv4-mapped form
	}
	lo = u128From16(p.Addr().As16())
	var host u128 // the host-bit mask of a /bits prefix
	if bits < 64 {
		host = u128{^uint64(0) >> bits, ^uint64(0)}
	} else {
		host = u128{0, ^uint64(0) >> (bits - 64)} // a shift by 64 gives 0
	}
	return lo, u128{lo.hi | host.hi, lo.lo | host.lo}, nil
}

// span is one rule's inclusive range; idx is its position in ipRules.
type span struct {
	lo, hi u128
	idx    int32
}

// segments turns possibly overlapping spans into sorted, disjoint,
// non-adjacent-with-equal-rule segments, each labelled with the lowest
// rule index covering it, so a lookup answers exactly what a first-match
// scan of ipRules would. It sweeps the range boundaries keeping the
// covering spans in a heap ordered by rule index: O(n log n).
func segments(spans []span) []span {
	if len(spans) == 0 {
		return nil
	}
	spans = slices.Clone(spans)
	slices.SortFunc(spans, func(a, b span) int {
		if a.lo.less(b.lo) {
			return -1
		}
		if b.lo.less(a.lo) {
			return 1
		}
		return 0
	})
	bounds := make([]u128, 0, 2*len(spans))
	for _, s := range spans {
		bounds = append(bounds, s.lo)
		if s.hi != maxU128 {
			bounds = append(bounds, s.hi.next())
		}
	}
	slices.SortFunc(bounds, func(a, b u128) int {
		if a.less(b) {
			return -1
		}
		if b.less(a) {
			return 1
		}
		return 0
	})
	bounds = slices.Compact(bounds)

	var (
		out    []span
		active spanHeap
		next   int // next span in spans to activate
	)
	for k, b := range bounds {
		for next < len(spans) && !b.less(spans[next].lo) {
			heap.Push(&active, spans[next])
			next++
		}
		for active.Len() > 0 && active[0].hi.less(b) {
			heap.Pop(&active)
		}
		if active.Len() == 0 {
			continue
		}
		end := maxU128
		if k+1 < len(bounds) {
			end = u128{bounds[k+1].hi, bounds[k+1].lo}
			if end.lo == 0 {
				end.hi--
			}
			end.lo-- // bounds[k+1]-1, which is >= b
		}
		idx := active[0].idx
		if n := len(out); n > 0 && out[n-1].idx == idx && out[n-1].hi.next() == b {
			out[n-1].hi = end
			continue
		}
		out = append(out, span{lo: b, hi: end, idx: idx})
	}
	return out
}

type spanHeap []span

func (h spanHeap) Len() int           { return len(h) }
func (h spanHeap) Less(i, j int) bool { return h[i].idx < h[j].idx }
func (h spanHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *spanHeap) Push(x any)        { *h = append(*h, x.(span)) }
func (h *spanHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// v4Table holds the IPv4 segments as parallel slices so the binary search
// reads only the lo column.
type v4Table struct {
	lo, hi []uint32
	idx    []int32
}

// v6Table is the same for the whole 128-bit space.
type v6Table struct {
	lo, hi []u128
	idx    []int32
}

// buildTables builds the IPv4 table from the parts of the spans inside the
// IPv4-mapped block (so "::ffff:10.0.0.0/104" and "::/0" cover IPv4
// clients exactly as "10.0.0.0/8" and "0.0.0.0/0" do) and the IPv6 table
// from the parts outside it.
func buildTables(spans []span) (v4Table, v6Table) {
	var v4spans, v6spans []span
	for _, s := range spans {
		if !s.hi.less(mappedLo) && !mappedHi.less(s.lo) {
			c := s
			if c.lo.less(mappedLo) {
				c.lo = mappedLo
			}
			if mappedHi.less(c.hi) {
				c.hi = mappedHi
			}
			v4spans = append(v4spans, c)
		}
		// IPv6 clients never fall inside the mapped block (Decide unmaps
		// them first): the IPv6 table keeps only what lies outside it.
		if s.lo.less(mappedLo) {
			c := s
			if !c.hi.less(mappedLo) {
				c.hi = u128{0, mappedLo.lo - 1}
			}
			v6spans = append(v6spans, c)
		}
		if mappedHi.less(s.hi) {
			c := s
			if !mappedHi.less(c.lo) {
				c.lo = mappedHi.next()
			}
			v6spans = append(v6spans, c)
		}
	}
	var t4 v4Table
	for _, s := range segments(v4spans) {
		t4.lo = append(t4.lo, uint32(s.lo.lo)) //nolint:gosec // inside the mapped block: the low 32 bits are the IPv4 address
		t4.hi = append(t4.hi, uint32(s.hi.lo)) //nolint:gosec // as above
		t4.idx = append(t4.idx, s.idx)
	}
	var t6 v6Table
	for _, s := range segments(v6spans) {
		t6.lo = append(t6.lo, s.lo)
		t6.hi = append(t6.hi, s.hi)
		t6.idx = append(t6.idx, s.idx)
	}
	return t4, t6
}

// find returns the lowest index of a rule containing a, or -1.
func (t *v4Table) find(a uint32) int32 {
	i, j := 0, len(t.lo)
	for i < j { // first segment with lo > a
		h := int(uint(i+j) >> 1)
		if t.lo[h] <= a {
			i = h + 1
		} else {
			j = h
		}
	}
	if i--; i >= 0 && a <= t.hi[i] {
		return t.idx[i]
	}
	return -1
}

func (t *v6Table) find(a u128) int32 {
	i, j := 0, len(t.lo)
	for i < j {
		h := int(uint(i+j) >> 1)
		if !a.less(t.lo[h]) {
			i = h + 1
		} else {
			j = h
		}
	}
	if i--; i >= 0 && !t.hi[i].less(a) {
		return t.idx[i]
	}
	return -1
}
