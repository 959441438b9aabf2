//go:build unix

package cli

import "syscall"

// readable is os.access(path, os.R_OK).
func readable(path string) bool {
	return syscall.Access(path, 4 /* R_OK */) == nil
}
