// Command invoicehub is the one binary for people: `invoicehub dev` runs the
// whole pipeline on one machine, `invoicehub send` posts signed sample
// webhooks. Run `invoicehub help` for the list.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/invoicehub/invoicehub/cmd/invoicehub/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
