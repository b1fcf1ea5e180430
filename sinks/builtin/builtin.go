// Package builtin registers invoicehub's built-in sinks. Adding a sink is
// one package and one line here.
package builtin

import (
	"github.com/invoicehub/invoicehub/sinks"
	"github.com/invoicehub/invoicehub/sinks/file"
	"github.com/invoicehub/invoicehub/sinks/httpsink"
)

// Registry returns a new registry holding every built-in sink type.
func Registry() *sinks.Registry {
	r := &sinks.Registry{}
	r.Register("file", file.Factory)
	r.Register("http", httpsink.Factory)
	return r
}
