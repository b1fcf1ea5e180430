package stage

import (
	"bytes"
	"errors"
	"fmt"
)

// ReadFile reads a whole file: os.ReadFile in main, a map in tests.
type ReadFile func(name string) ([]byte, error)

// SecretRef says where a secret is, never what it is: an environment
// variable or a file. Every configuration that needs a secret (sources,
// sink options, the NATS password) holds one of these.
type SecretRef struct {
	Env  string `yaml:"env"`
	File string `yaml:"file"`
}

// IsZero reports whether the reference names nothing.
func (r SecretRef) IsZero() bool { return r.Env == "" && r.File == "" }

// String names the reference (never the value), for errors.
func (r SecretRef) String() string {
	if r.Env != "" {
		return "env " + r.Env
	}
	return "file " + r.File
}

// Secrets resolves SecretRefs from the process's environment and files.
type Secrets struct {
	Getenv   Env
	ReadFile ReadFile
}

// Resolve reads the secret r names. The one trimming rule, for variables
// and files alike: trailing line endings (\n, \r\n) are dropped, so that
// `echo secret > file` works; nothing else is, since spaces may be part
// of a secret. An empty secret is an error. Errors name the reference,
// never the value.
func (s Secrets) Resolve(r SecretRef) ([]byte, error) {
	var b []byte
	switch {
	case r.Env != "" && r.File != "":
		return nil, errors.New("set env or file, not both")
	case r.Env != "":
		b = []byte(s.Getenv(r.Env))
	case r.File != "":
		var err error
		if b, err = s.ReadFile(r.File); err != nil {
			return nil, fmt.Errorf("secret file %s: %w", r.File, err)
		}
	default:
		return nil, errors.New("a secret needs env or file")
	}
	if b = bytes.TrimRight(b, "\r\n"); len(b) == 0 {
		return nil, fmt.Errorf("secret %s is empty or unset", r)
	}
	return b, nil
}
