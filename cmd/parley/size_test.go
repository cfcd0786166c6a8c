package main

import "testing"

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "1048576": 1 << 20, "512KiB": 512 << 10, "100MiB": 100 << 20, "10GiB": 10 << 30,
		"10gib": 10 << 30, "3M": 3 << 20, "2 GB": 2 << 30, "1TiB": 1 << 40, "7B": 7,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5GiB", "MiB", "ten", "9999999999TiB"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
	if s := formatSize(100 << 20); s != "100MiB" {
		t.Errorf("formatSize(100 MiB) = %q", s)
	}
}
