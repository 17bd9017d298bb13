package contract

import (
	_ "embed"
	"strings"
)

//go:embed currencies.txt
var currencyTable string

// currencies maps each active ISO 4217 code to its minor units. Built once
// from the embedded table and never written afterwards.
var currencies = parseCurrencies(currencyTable)

func parseCurrencies(table string) map[string]int {
	m := make(map[string]int, 180)
	for line := range strings.Lines(table) {
		f := strings.Fields(line)
		if len(f) != 3 || strings.HasPrefix(f[0], "#") {
			continue
		}
		m[f[0]] = int(f[2][0] - '0')
	}
	return m
}

// CurrencyMinorUnits returns the number of minor units (decimal places) of
// the active ISO 4217 currency code ("EUR" 2, "JPY" 0, "KWD" 3, "CLF" 4) and
// whether code is one. Codes are upper case. The embedded table follows ISO
// 4217 list one; precious metals, bond-market units, special drawing rights,
// XTS (testing) and XXX (no currency) are not in it, since nobody pays in
// them, and withdrawn codes (HRK, ZWL, ANG, BGN) are not either.
func CurrencyMinorUnits(code string) (int, bool) {
	n, ok := currencies[code]
	return n, ok
}
