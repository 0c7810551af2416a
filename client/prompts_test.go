package client

import "testing"

func TestPromptLibrary(t *testing.T) {
	t.Parallel()
	if len(Stages) != 7 {
		t.Fatalf("%d stages, want the seven", len(Stages))
	}
	seen := map[string]bool{}
	for _, s := range Stages {
		if len(s.Prompts) < 6 {
			t.Errorf("stage %d has %d prompts, want at least 6", s.N, len(s.Prompts))
		}
		for _, p := range s.Prompts {
			if seen[p.ID] || seen[p.Text] || p.Text == "" {
				t.Errorf("prompt %s repeated or empty", p.ID)
			}
			seen[p.ID], seen[p.Text] = true, true
			if got, ok := FindPrompt(p.ID); !ok || got != p {
				t.Errorf("FindPrompt(%s) = %v, %v", p.ID, got, ok)
			}
		}
	}
	if _, ok := FindPrompt("8.1"); ok {
		t.Error("found a prompt that does not exist")
	}
}
