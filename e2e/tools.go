//go:build tools

package e2e

// The e2e tests build this binary; importing it here keeps it in go.mod so
// the module also tests alone (GOWORK=off).
import _ "github.com/invoicehub/invoicehub/cmd/invoicehub"
