package client

import (
	"errors"
	"testing"
)

// CheckResponse is the rule Respond applies, with Respond's errors.
func TestCheckResponse(t *testing.T) {
	t.Parallel()
	question := Entry{Kind: KindQuestion}
	heard := Entry{Kind: KindEntry, ListenOnly: true}
	for _, c := range []struct {
		name   string
		target Entry
		kind   string
		want   error
	}{
		{"answer a question", question, KindAnswer, nil},
		{"answer an entry", Entry{Kind: KindEntry}, KindAnswer, ErrNotAQuestion},
		{"follow up an entry", Entry{Kind: KindEntry}, KindFollowup, ErrNotAQuestion},
		{"answer one's own question", Entry{Kind: KindQuestion, Mine: true}, KindAnswer, ErrOwnQuestion},
		{"follow up one's own question", Entry{Kind: KindQuestion, Mine: true}, KindFollowup, nil},
		{"reply to a question", question, KindReply, ErrReplyToQuestion},
		{"reply to listen-only", heard, KindReply, ErrListenOnly},
		{"reply to one's own listen-only", Entry{Kind: KindEntry, ListenOnly: true, Mine: true}, KindReply, nil},
		{"ack listen-only", heard, KindAck, nil},
		{"ack one's own", Entry{Kind: KindEntry, Mine: true}, KindAck, ErrOwnEntry},
		{"check in on one's commitment", Entry{Kind: KindCommit, Mine: true}, KindCheckin, nil},
		{"check in on the partner's", Entry{Kind: KindCommit}, KindCheckin, ErrNotYourCommitment},
		{"decide an entry", Entry{Kind: KindEntry}, KindDecision, ErrNotAnAgreement},
		{"decide one's own proposal", Entry{Kind: KindAgree, Mine: true, State: "proposed"}, KindDecision, ErrOwnEntry},
		{"decide a settled one", Entry{Kind: KindAgree, State: "accepted"}, KindDecision, ErrAgreementSettled},
		{"decide a proposal", Entry{Kind: KindAgree, State: "proposed"}, KindDecision, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := CheckResponse(c.target, c.kind)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("CheckResponse = %v, want %v", err, c.want)
			}
		})
	}
	if err := CheckResponse(question, KindEntry); err == nil {
		t.Fatal("an entry is not a response")
	}
}
