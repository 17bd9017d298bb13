// Package depcheck holds a test that guards the core module's dependency
// graph: a service importing only sadpath's core packages must not find a
// database client, a broker client or the otel SDK in its build list.
package depcheck
