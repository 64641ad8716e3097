package config

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
)

// Enum is a string option restricted to a fixed set of values (matched
// case-insensitively, stored lower-case).
type Enum struct {
	p       *string
	allowed []string
}

// NewEnum returns an Enum that stores into p, starting at value. The
// allowed values must be lower-case.
func NewEnum(p *string, value string, allowed ...string) *Enum {
	*p = value
	return &Enum{p: p, allowed: allowed}
}

// Set implements pflag.Value.
func (e *Enum) Set(s string) error {
	v := strings.ToLower(strings.TrimSpace(s))
	if !slices.Contains(e.allowed, v) {
		return fmt.Errorf("must be one of %s", strings.Join(e.allowed, ", "))
	}
	*e.p = v
	return nil
}

// String implements pflag.Value.
func (e *Enum) String() string {
	if e == nil || e.p == nil {
		return ""
	}
	return *e.p
}

// Type implements pflag.Value; help shows the choices.
func (e *Enum) Type() string { return strings.Join(e.allowed, "|") }

// Prefixes is a list of IP prefixes (CIDRs). A bare address means just that
// host (/32 or /128). IPv4-mapped IPv6 prefixes are stored as the IPv4
// prefixes they denote. A prefix with host bits set ("10.1.2.3/8") is
// refused rather than silently widened: these lists grant trust, and a typo
// must not grant more than was meant.
type Prefixes struct {
	p       *[]netip.Prefix
	changed bool
}

// NewPrefixes returns a Prefixes value that stores into p, starting empty.
func NewPrefixes(p *[]netip.Prefix) *Prefixes {
	*p = nil
	return &Prefixes{p: p}
}

// ParsePrefix parses one element of a Prefixes list.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set (did you mean %s?)", s, p.Masked())
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("%q mixes IPv4-mapped and other IPv6 addresses", s)
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p, nil
}

func parsePrefixes(items []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(items))
	for _, it := range items {
		if strings.TrimSpace(it) == "" {
			continue
		}
		p, err := ParsePrefix(it)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Set implements pflag.Value: a comma-separated list. The first Set
// replaces the default; later ones (a repeated flag) append.
func (v *Prefixes) Set(s string) error {
	ps, err := parsePrefixes(strings.Split(s, ","))
	if err != nil {
		return err
	}
	if v.changed {
		*v.p = append(*v.p, ps...)
	} else {
		*v.p = ps
	}
	v.changed = true
	return nil
}

// String implements pflag.Value.
func (v *Prefixes) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return strings.Join(v.GetSlice(), ",")
}

// Type implements pflag.Value.
func (v *Prefixes) Type() string { return "cidrs" }

// Append implements pflag.SliceValue.
func (v *Prefixes) Append(s string) error {
	p, err := ParsePrefix(s)
	if err != nil {
		return err
	}
	*v.p = append(*v.p, p)
	return nil
}

// Replace implements pflag.SliceValue.
func (v *Prefixes) Replace(items []string) error {
	ps, err := parsePrefixes(items)
	if err != nil {
		return err
	}
	*v.p = ps
	v.changed = true
	return nil
}

// GetSlice implements pflag.SliceValue.
func (v *Prefixes) GetSlice() []string {
	out := make([]string, 0, len(*v.p))
	for _, p := range *v.p {
		out = append(out, p.String())
	}
	return out
}

// ByteSize is a size in bytes, written as a number with an optional binary
// unit: 4194304, 4096KiB, 4MiB, 1GiB (units case-insensitive; B, KiB, MiB,
// GiB, TiB, and K, M, G, T as the same binary units).
type ByteSize struct {
	p *int64
}

// NewByteSize returns a ByteSize that stores into p, starting at value.
func NewByteSize(p *int64, value int64) *ByteSize {
	*p = value
	return &ByteSize{p: p}
}

var byteUnits = []struct {
	display string
	names   []string
	shift   uint
}{
	{"TiB", []string{"tib", "t"}, 40},
	{"GiB", []string{"gib", "g"}, 30},
	{"MiB", []string{"mib", "m"}, 20},
	{"KiB", []string{"kib", "k"}, 10},
	{"", []string{"b", ""}, 0},
}

// ParseByteSize parses a ByteSize value.
func ParseByteSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	if num == "" {
		return 0, fmt.Errorf("%q is not a size (e.g. 4MiB or 4194304)", s)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size: %w", s, err)
	}
	for _, u := range byteUnits {
		if slices.Contains(u.names, unit) {
			if n > math.MaxInt64>>u.shift {
				return 0, fmt.Errorf("%q is too large", s)
			}
			return n << u.shift, nil
		}
	}
	return 0, fmt.Errorf("%q has an unknown unit (use B, KiB, MiB, GiB or TiB)", s)
}

// FormatByteSize writes n in the largest binary unit that divides it.
func FormatByteSize(n int64) string {
	for _, u := range byteUnits {
		if u.shift > 0 && n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.display
		}
	}
	return strconv.FormatInt(n, 10)
}

// Set implements pflag.Value.
func (b *ByteSize) Set(s string) error {
	n, err := ParseByteSize(s)
	if err != nil {
		return err
	}
	*b.p = n
	return nil
}

// String implements pflag.Value.
func (b *ByteSize) String() string {
	if b == nil || b.p == nil {
		return ""
	}
	return FormatByteSize(*b.p)
}

// Type implements pflag.Value.
func (b *ByteSize) Type() string { return "size" }

var (
	_ pflag.Value      = (*Enum)(nil)
	_ pflag.SliceValue = (*Prefixes)(nil)
	_ pflag.Value      = (*Prefixes)(nil)
	_ pflag.Value      = (*ByteSize)(nil)
)
