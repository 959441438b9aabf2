//go:build !race

package dstoken

const raceEnabled = false
