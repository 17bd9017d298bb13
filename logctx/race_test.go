//go:build race

package logctx

// raceEnabled is true under -race, which changes allocation counts.
const raceEnabled = true
