"""Network-security monitoring: logins and intrusion attempts read from the server's own
logs (sshd, smbd), and the block of a source address in secops's own nftables table."""
