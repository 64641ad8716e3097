package main

import (
	"strings"
	"testing"
	"time"
)

func TestExpiryFrom(t *testing.T) {
	now := time.Date(2030, 1, 1, 10, 0, 0, 0, time.FixedZone("x", 3600))
	cases := []struct {
		days int
		at   string
		want string
		err  string
	}{
		{want: ""},
		{days: 30, want: "2030-01-31T09:00:00Z"},
		{at: "2031-02-03T04:05:06+02:00", want: "2031-02-03T02:05:06Z"},
		{days: -1, err: "positive"},
		{days: 1, at: "2031-01-01T00:00:00Z", err: "not both"},
		{at: "tomorrow", err: "RFC 3339"},
	}
	for _, c := range cases {
		got, err := expiryFrom(c.days, c.at, now)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || exitCode(err) != 2 {
				t.Errorf("%+v: err %v", c, err)
			}
			continue
		}
		if err != nil || (got == nil) != (c.want == "") || got != nil && *got != c.want {
			t.Errorf("%+v: %v %v", c, got, err)
		}
	}
	if got := scopeMapIDFor("/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/r", "mymap"); got !=
		"/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/r/scopeMaps/mymap" {
		t.Errorf("scopeMapIDFor: %s", got)
	}
}
