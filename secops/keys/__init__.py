"""Keys: restic passwords, the office Ed25519 and GPG keys, SSH host-key pins, escrow."""
