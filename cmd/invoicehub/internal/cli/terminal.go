package cli

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Text output shows strings that providers, senders and receivers wrote
// (invoice numbers, event ids, dead-letter reasons, bodies). A terminal
// obeys the control characters in them: a newline forges an output line,
// ESC sequences retitle the window or clear the screen, bidi overrides
// reorder what is shown. Every such string goes through terminalSafe
// before it is printed (a body too: its newlines are shown as \n); JSON
// output is left as encoding/json writes it.

// terminalSafe returns s with every control character, bidi control and
// invalid byte written as an escape (\n, \x1b, \u202e).
func terminalSafe(s string) string {
	var b strings.Builder
	done := 0 // s[:done] is in b
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if e := escape(r, size, s[i]); e != "" {
			b.WriteString(s[done:i])
			b.WriteString(e)
			done = i + size
		}
		i += size
	}
	if done == 0 {
		return s
	}
	b.WriteString(s[done:])
	return b.String()
}

// escape is how the rune r (size bytes from first) is shown, or "" when
// it is shown as itself.
func escape(r rune, size int, first byte) string {
	switch {
	case r == utf8.RuneError && size <= 1:
		return fmt.Sprintf(`\x%02x`, first)
	case r == '\n':
		return `\n`
	case r == '\t':
		return `\t`
	case r == '\r':
		return `\r`
	case r < 0x20 || r == 0x7f:
		return fmt.Sprintf(`\x%02x`, r)
	case unsafeRune(r):
		return fmt.Sprintf(`\u%04x`, r)
	}
	return ""
}

// unsafeRune reports the C1 controls and the format characters that
// change how a terminal shows text: bidi marks, embeddings, overrides and
// isolates, zero-width characters, line and paragraph separators.
func unsafeRune(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f,
		r == 0x061c,
		r >= 0x200b && r <= 0x200f,
		r >= 0x2028 && r <= 0x202e,
		r >= 0x2060 && r <= 0x2069,
		r == 0xfeff:
		return true
	}
	return false
}
