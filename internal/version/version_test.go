package version

import (
	"runtime/debug"
	"testing"
)

func TestString(t *testing.T) {
	vcs := []debug.BuildSetting{
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "abc1234def5678abc1234def5678abc1234def56"},
		{Key: "vcs.time", Value: "2026-12-01T10:11:12Z"},
		{Key: "vcs.modified", Value: "false"},
	}
	dirty := append(vcs[:3:3], debug.BuildSetting{Key: "vcs.modified", Value: "true"})
	for _, tc := range []struct {
		name                  string
		bi                    *debug.BuildInfo
		version, commit, date string
		want                  string
	}{
		{name: "no build info", want: "(devel)"},
		{name: "work tree without vcs", bi: &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, want: "(devel)"},
		{name: "release", bi: &debug.BuildInfo{Main: debug.Module{Version: "v0.4.0"}, Settings: vcs}, want: "v0.4.0 (commit abc1234, 2026-12-01)"},
		{name: "modified work tree", bi: &debug.BuildInfo{Main: debug.Module{Version: "v0.4.1-0.20261201101112-abc1234def56+dirty"}, Settings: dirty},
			want: "v0.4.1-0.20261201101112-abc1234def56+dirty (commit abc1234, 2026-12-01, modified)"},
		{name: "ldflags override everything", bi: &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs},
			version: "v1.0.0", commit: "fedcba9876", date: "2027-01-02", want: "v1.0.0 (commit fedcba9, 2027-01-02)"},
		{name: "ldflags version only", version: "v1.0.0", want: "v1.0.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fromBuildInfo(tc.bi, tc.version, tc.commit, tc.date).String(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
