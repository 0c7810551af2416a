package client_test

import (
	"fmt"
	"slices"
	"strings"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/client/clienttest"
)

// The helpers the external tests share live in clienttest, so that tests
// elsewhere can use them and no copy drifts; these short names are what
// the tests in this package call.
const pass = clienttest.Passphrase

var (
	newAccount = clienttest.NewAccount
	ctxFor     = clienttest.Context
	mustSync   = clienttest.Sync
	write      = clienttest.Write
	texts      = clienttest.Texts
	pair       = clienttest.Pair
	status     = clienttest.Status
	clean      = clienttest.Clean
)

// shown returns the notices a status shows (those not marked read), each
// as "ID xCount", with "@Position" added for items the relay sent.
func shown(st client.Status) []string {
	var out []string
	for _, n := range st.Notices {
		if n.Acknowledged {
			continue
		}
		s := fmt.Sprintf("%s x%d", n.ID, n.Count)
		if strings.HasPrefix(string(n.Kind), "relay-") {
			s += fmt.Sprintf(" @%d", n.Position)
		}
		out = append(out, s)
	}
	return out
}

// hasShown reports whether a status shows a notice of kind.
func hasShown(st client.Status, kind client.NoticeKind) bool {
	return slices.ContainsFunc(st.Notices, func(n client.Notice) bool { return n.Kind == kind && !n.Acknowledged })
}

// gaps describes a status's gaps as "kind who/device count".
func gaps(st client.Status) []string {
	var out []string
	for _, n := range st.Missing {
		out = append(out, fmt.Sprintf("%s %s/%s %d", n.Kind, n.Who, n.Device, n.Count))
	}
	return out
}

// missingFrom and forkedFrom are the gaps gaps describes.
func missingFrom(device string, n int) string {
	return fmt.Sprintf("%s %s %d", client.NoticeMissingItems, device, n)
}

func forkedFrom(device string) string {
	return fmt.Sprintf("%s %s 1", client.NoticeForkedHistory, device)
}
