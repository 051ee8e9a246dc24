"""Restore and recovery drills, verified against the signed manifest in each snapshot."""
