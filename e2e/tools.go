//go:build tools

package e2e

// The e2e tests build these binaries; importing them here keeps them in
// go.mod so the module also tests alone (GOWORK=off).
import (
	_ "github.com/invoicehub/invoicehub/cmd/invoicehub"
	_ "github.com/invoicehub/invoicehub/sinks/cmd/sinks"
)
