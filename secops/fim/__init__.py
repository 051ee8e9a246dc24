"""File integrity monitoring: ransomware detection on watched folders."""
