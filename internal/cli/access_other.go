//go:build !unix

package cli

import "os"

// readable approximates os.access(path, os.R_OK) by opening the path.
func readable(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	_ = f.Close()
	return true
}
