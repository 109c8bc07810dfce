package lora

import (
	"fmt"
	"strings"
)

var targetNames = []struct {
	t    Target
	name string
}{
	{TargetQuery, "query"},
	{TargetKey, "key"},
	{TargetValue, "value"},
	{TargetOutput, "output"},
	{TargetFFN, "ffn"},
}

// ParseTargets parses a comma-separated list of target names (query, key,
// value, output, ffn; any case, spaces allowed), as the CLI's --targets
// takes it. "all" selects every layer. An unknown name gives an error
// wrapping ErrBadSetting that lists the valid ones; an empty list gives 0,
// which Settings reads as the default, query and value.
func ParseTargets(s string) (Target, error) {
	var t Target
	for _, f := range strings.Split(s, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		if f == "" {
			continue
		}
		if f == "all" {
			t |= TargetQuery | TargetKey | TargetValue | TargetOutput | TargetFFN
			continue
		}
		found := false
		for _, n := range targetNames {
			if n.name == f {
				t |= n.t
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("%w: LoRA target %q unknown; want one of %s, all", ErrBadSetting, f, targetList())
		}
	}
	return t, nil
}

// String returns the targets' names joined by commas, in the order query,
// key, value, output, ffn ("" for none).
func (t Target) String() string {
	var names []string
	for _, n := range targetNames {
		if t&n.t != 0 {
			names = append(names, n.name)
		}
	}
	if rest := t &^ (TargetQuery | TargetKey | TargetValue | TargetOutput | TargetFFN); rest != 0 {
		names = append(names, fmt.Sprintf("Target(%#x)", uint8(rest)))
	}
	return strings.Join(names, ",")
}
