package azuritetest

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal makes the kernel kill Azurite if the test process dies
// without reaching Main's cleanup (a timeout panic, a kill).
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
