package main

import (
	"os"
	"strings"
	"testing"
)

// The README shows both receivers in full; they must be these files, byte for byte.
func TestREADMEShowsTheReceivers(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for file, fence := range map[string]string{"main.go": "```go\n", "receiver.py": "```python\n"} {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(readme), fence+string(src)+"```\n") {
			t.Errorf("README.md does not show %s as it is: copy the file into its code block", file)
		}
	}
}
