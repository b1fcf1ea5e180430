// Package builtin registers invoicehub's built-in sinks. Adding a sink is
// one package and one line here.
package builtin

import (
	"github.com/invoicehub/invoicehub/sinks"
	"github.com/invoicehub/invoicehub/sinks/file"
	"github.com/invoicehub/invoicehub/sinks/httpsink"
	"github.com/invoicehub/invoicehub/sinks/sqlsink"
)

// Registry returns a new registry holding every built-in sink type.
func Registry() *sinks.Registry {
	r := &sinks.Registry{}
	r.Register("file", file.Factory)
	r.Register("http", httpsink.Factory)
	r.Register("sql", sqlsink.Factory)
	r.Register("stdout", file.StdoutFactory)
	return r
}
