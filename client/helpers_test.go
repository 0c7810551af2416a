package client_test

import "github.com/kintsugi-journal/kintsugi/client/clienttest"

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
