"""The control plane `/_sandbox`: accounts, clock, seed, buyer and underwriter actions, dump."""
