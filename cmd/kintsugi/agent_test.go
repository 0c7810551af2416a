package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseSession(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"30m", 30 * time.Minute, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"45 minutes", 45 * time.Minute, ""},
		{"1 hour 30 min", 90 * time.Minute, ""},
		{" 2 Hours ", 2 * time.Hour, ""},
		{"24h", 24 * time.Hour, ""},
		{"1m", time.Minute, ""},
		{"90", 0, "needs a unit"},
		{"1.5", 0, "needs a unit"},
		{"", 0, "needs a length of time"},
		{"soon", 0, "is not a length of time"},
		{"1d", 24 * time.Hour, ""}, // days read as --expires reads them
		{"2 days", 0, "longer than a day"},
		{"59s", 0, "shorter than 1 minute"},
		{"-5m", 0, "shorter than 1 minute"},
		{"24h1s", 0, "longer than a day"},
		{"48 hours", 0, "longer than a day"},
	} {
		got, err := parseSession(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseSession(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseSession(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestSpan(t *testing.T) {
	for d, want := range map[time.Duration]string{
		30 * time.Minute:             "30 minutes",
		time.Hour:                    "1 hour",
		90 * time.Minute:             "1 hour 30 minutes",
		24 * time.Hour:               "24 hours",
		time.Second:                  "1 second",
		time.Minute + 5*time.Second:  "1 minute 5 seconds",
		2*time.Hour + 59*time.Second: "2 hours",
		0:                            "no time",
	} {
		if got := span(d); got != want {
			t.Errorf("span(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestRemaining(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Hour:                  "another hour",
		time.Hour - 30*time.Second: "another hour",
		10 * time.Minute:           "another 10 minutes",
		time.Minute:                "another minute",
		90 * time.Minute:           "another hour and 30 minutes",
		2*time.Hour + time.Minute:  "another 2 hours and 1 minute",
		24 * time.Hour:             "another 24 hours",
		30 * time.Second:           "less than a minute more",
		time.Hour + 61*time.Second: "another hour and 2 minutes",
	} {
		if got := remaining(d); got != want {
			t.Errorf("remaining(%v) = %q, want %q", d, got, want)
		}
	}
}

// The agent and the editor get kintsugi's environment without the secrets
// it may carry.
func TestChildEnvHasNoSecrets(t *testing.T) {
	t.Setenv("KINTSUGI_PASSPHRASE", "horse-battery-7")
	t.Setenv("KINTSUGI_RECOVERY_PHRASE", "abcd-efgh")
	t.Setenv("KINTSUGI_HOME", "/somewhere")
	env := strings.Join(childEnv(), "\n")
	for _, secret := range []string{"horse-battery-7", "abcd-efgh", "KINTSUGI_PASSPHRASE=", "KINTSUGI_RECOVERY_PHRASE="} {
		if strings.Contains(env, secret) {
			t.Errorf("a child's environment holds %q", secret)
		}
	}
	if !strings.Contains(env, "KINTSUGI_HOME=/somewhere") {
		t.Errorf("a child's environment lost KINTSUGI_HOME:\n%s", env)
	}
}
