package config

import (
	"math"
	"net/netip"
	"strconv"
	"testing"
)

func TestParsePrefix(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "10.0.0.0/8", want: "10.0.0.0/8"},
		{in: " 192.0.2.7 ", want: "192.0.2.7/32"},
		{in: "2001:db8::/32", want: "2001:db8::/32"},
		{in: "::1", want: "::1/128"},
		{in: "::ffff:10.0.0.0/104", want: "10.0.0.0/8"},
		{in: "::ffff:192.0.2.7", want: "192.0.2.7/32"},
		{in: "0.0.0.0/0", want: "0.0.0.0/0"},
		{in: "10.1.2.3/8", wantErr: true},
		{in: "::ffff:0:0/80", wantErr: true},
		{in: "fe80::1%eth0", wantErr: true},
		{in: "10.0.0.0/33", wantErr: true},
		{in: "localhost", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParsePrefix(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("ParsePrefix(%q) = %s, want error", tt.in, got)
			}
			continue
		}
		if err != nil || got != netip.MustParsePrefix(tt.want) {
			t.Errorf("ParsePrefix(%q) = %s, %v, want %s", tt.in, got, err, tt.want)
		}
	}
}

func TestPrefixesSetSkipsBlankElements(t *testing.T) {
	var ps []netip.Prefix
	v := NewPrefixes(&ps)
	if err := v.Set("10.0.0.0/8, ,192.0.2.0/24,"); err != nil {
		t.Fatal(err)
	}
	if v.String() != "10.0.0.0/8,192.0.2.0/24" {
		t.Fatalf("String() = %q", v.String())
	}
	if err := v.Append("bogus"); err == nil {
		t.Fatal("Append accepted a bad prefix")
	}
}

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{in: "4194304", want: 4 << 20},
		{in: "4MiB", want: 4 << 20},
		{in: "4mib", want: 4 << 20},
		{in: "4 MiB", want: 4 << 20},
		{in: "4M", want: 4 << 20},
		{in: "512KiB", want: 512 << 10},
		{in: "1GiB", want: 1 << 30},
		{in: "2TiB", want: 2 << 40},
		{in: "100B", want: 100},
		{in: "0", want: 0},
		{in: "-1", wantErr: true},
		{in: "4MB", wantErr: true},
		{in: "MiB", wantErr: true},
		{in: "", wantErr: true},
		{in: "1.5MiB", wantErr: true},
		{in: "99999999999999999999", wantErr: true},
		{in: strconv.FormatInt(math.MaxInt64>>20+1, 10) + "MiB", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseByteSize(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("ParseByteSize(%q) = %d, want error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseByteSize(%q) = %d, %v, want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestFormatByteSizeRoundTrips(t *testing.T) {
	for _, n := range []int64{0, 1, 1023, 1024, 4 << 20, 3 << 30, 5<<20 + 1, 7 << 40} {
		s := FormatByteSize(n)
		back, err := ParseByteSize(s)
		if err != nil || back != n {
			t.Errorf("FormatByteSize(%d) = %q, parses back to %d, %v", n, s, back, err)
		}
	}
	if got := FormatByteSize(4 << 20); got != "4MiB" {
		t.Errorf("FormatByteSize(4MiB) = %q", got)
	}
}

func TestEnum(t *testing.T) {
	var s string
	e := NewEnum(&s, "text", "text", "json")
	if e.String() != "text" || e.Type() != "text|json" {
		t.Fatalf("String/Type = %q/%q", e.String(), e.Type())
	}
	if err := e.Set("JSON"); err != nil || s != "json" {
		t.Fatalf("Set(JSON) = %v, s = %q", err, s)
	}
	if err := e.Set("xml"); err == nil || s != "json" {
		t.Fatalf("Set(xml) = %v, s = %q", err, s)
	}
}

func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"4MiB", "0", "1 k", "9223372036854775807", "8796093022208TiB", "-3", "1e6"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseByteSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseByteSize(%q) = %d", s, n)
		}
		if back, err := ParseByteSize(FormatByteSize(n)); err != nil || back != n {
			t.Fatalf("round trip of %d: %d, %v", n, back, err)
		}
	})
}

func FuzzParsePrefix(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "::ffff:1.2.3.4/120", "1.2.3.4", "::/0", "fe80::%x/64"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePrefix(s)
		if err != nil {
			return
		}
		if !p.IsValid() || p.Masked() != p || p.Addr().Is4In6() || p.Addr().Zone() != "" {
			t.Fatalf("ParsePrefix(%q) = %s", s, p)
		}
	})
}
