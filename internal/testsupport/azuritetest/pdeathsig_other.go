//go:build !linux

package azuritetest

import "os/exec"

func setParentDeathSignal(*exec.Cmd) {}
