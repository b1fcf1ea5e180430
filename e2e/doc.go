// Package e2e holds invoicehub's end-to-end tests. Tier one (every
// machine) builds the real binaries once and runs them as processes
// against their embedded JetStream; tier two (machines with Docker) runs
// the project's own images with testcontainers.
package e2e
