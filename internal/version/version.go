// Package version says which build of Kintsugi is running, for the
// binaries' --version flag and the relay's info document.
//
// The module version and the VCS commit come from the build information
// the Go toolchain embeds ([debug.ReadBuildInfo]). A release build may set
// them instead with the linker:
//
//	go build -ldflags "-X github.com/kintsugi-journal/kintsugi/internal/version.Version=v0.4.0 \
//	    -X github.com/kintsugi-journal/kintsugi/internal/version.Commit=abc1234 \
//	    -X github.com/kintsugi-journal/kintsugi/internal/version.Date=2026-12-01" ./cmd/kintsugi
package version

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// Set with -ldflags -X to override what the build information says. Each
// one left empty is read from the build information.
var (
	// Version is the module version, such as v0.4.0.
	Version string
	// Commit is the VCS revision the binary was built from.
	Commit string
	// Date is the commit's date, as YYYY-MM-DD.
	Date string
)

// Devel is the module version of a binary built from a work tree without
// version information (go run, go test, or -buildvcs=false).
const Devel = "(devel)"

// Info is what is known about the running build.
type Info struct {
	Version  string // module version, or Devel
	Commit   string // VCS revision, "" if unknown
	Date     string // the revision's date as YYYY-MM-DD, "" if unknown
	Modified bool   // built from a work tree with uncommitted changes
}

// Get returns the running build's Info: the -ldflags overrides where set,
// else the build information.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return fromBuildInfo(bi, Version, Commit, Date)
}

// fromBuildInfo reads bi (which may be nil); version, commit and date,
// where not empty, replace what bi says.
func fromBuildInfo(bi *debug.BuildInfo, version, commit, date string) Info {
	var in Info
	if bi != nil {
		in.Version = bi.Main.Version
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				in.Commit = s.Value
			case "vcs.time":
				in.Date, _, _ = strings.Cut(s.Value, "T")
			case "vcs.modified":
				in.Modified = s.Value == "true"
			}
		}
	}
	if version != "" {
		in.Version = version
	}
	if commit != "" {
		in.Commit = commit
	}
	if date != "" {
		in.Date = date
	}
	if in.Version == "" {
		in.Version = Devel
	}
	return in
}

// String is the one line --version prints after the program's name, as
// "v0.4.0 (commit abc1234, 2026-12-01)", or "(devel)" when nothing more is
// known. The commit is shortened to 7 characters; ", modified" follows
// the date when the work tree had uncommitted changes.
func (in Info) String() string {
	var details []string
	if in.Commit != "" {
		details = append(details, "commit "+short(in.Commit))
	}
	if in.Date != "" {
		details = append(details, in.Date)
	}
	if in.Modified {
		details = append(details, "modified")
	}
	if len(details) == 0 {
		return in.Version
	}
	return fmt.Sprintf("%s (%s)", in.Version, strings.Join(details, ", "))
}

func short(commit string) string {
	if len(commit) > 7 {
		return commit[:7]
	}
	return commit
}
