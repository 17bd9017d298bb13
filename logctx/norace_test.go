//go:build !race

package logctx

const raceEnabled = false
