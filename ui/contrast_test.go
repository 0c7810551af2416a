package ui

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The style sheet's promise (WCAG AA: every text colour at least 4.5:1
// on each background it is used on), checked in both colour schemes and
// on the feelings chart's cells, so a colour changed later cannot break it
// unnoticed.
func TestColoursMeetWCAGAA(t *testing.T) {
	css, err := staticRoot.ReadFile("static/style.css")
	if err != nil {
		t.Fatal(err)
	}
	light, dark, ok := strings.Cut(string(css), "@media (prefers-color-scheme: dark)")
	if !ok {
		t.Fatal("style.css has no dark scheme")
	}
	for name, block := range map[string]string{"light": light, "dark": dark} {
		v := cssVars(t, block)
		for _, text := range []string{"--fg", "--muted", "--gold"} {
			for _, bg := range []string{"--bg", "--card", "--mine"} {
				if r := contrast(v[text], v[bg]); r < 4.5 {
					t.Errorf("%s scheme: %s on %s is %.2f:1, below 4.5:1", name, text, bg, r)
				}
			}
		}
		if r := contrast(v["--alert-fg"], v["--alert-bg"]); r < 4.5 {
			t.Errorf("%s scheme: the alert text is %.2f:1, below 4.5:1", name, r)
		}
	}
	// The chart's cells: "background: #x; color: #y".
	cells := regexp.MustCompile(`\.chart td\.lvl-[^{]*\{ background: (#[0-9a-f]{6}); color: (#[0-9a-f]{6}); \}`).FindAllStringSubmatch(string(css), -1)
	if len(cells) < 5 {
		t.Fatalf("found %d chart cell colours, want the five levels", len(cells))
	}
	for _, c := range cells {
		if r := contrast(c[2], c[1]); r < 4.5 {
			t.Errorf("chart cell %s on %s is %.2f:1, below 4.5:1", c[2], c[1], r)
		}
	}
}

// cssVars reads the custom properties (--name: #rrggbb;) of a block.
func cssVars(t *testing.T, block string) map[string]string {
	t.Helper()
	out := make(map[string]string)
	for _, m := range regexp.MustCompile(`(--[a-z-]+): (#[0-9a-f]{6});`).FindAllStringSubmatch(block, -1) {
		out[m[1]] = m[2]
	}
	for _, want := range []string{"--bg", "--fg", "--muted", "--gold", "--card", "--mine", "--alert-bg", "--alert-fg"} {
		if out[want] == "" {
			t.Fatalf("no %s in the block", want)
		}
	}
	return out
}

// contrast is the WCAG 2 contrast ratio of two #rrggbb colours.
func contrast(a, b string) float64 {
	la, lb := luminance(a), luminance(b)
	return (math.Max(la, lb) + 0.05) / (math.Min(la, lb) + 0.05)
}

func luminance(hex string) float64 {
	var c [3]float64
	for i := range c {
		n, _ := strconv.ParseUint(hex[1+2*i:3+2*i], 16, 8)
		v := float64(n) / 255
		if v <= 0.03928 {
			c[i] = v / 12.92
		} else {
			c[i] = math.Pow((v+0.055)/1.055, 2.4)
		}
	}
	return 0.2126*c[0] + 0.7152*c[1] + 0.0722*c[2]
}
