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
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size <= 1) || r < 0x20 || r == 0x7f || unsafeRune(r) {
			return true
		}
		i += size
	}
	return false
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
