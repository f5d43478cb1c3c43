"""jacscale core: the microkernel."""
