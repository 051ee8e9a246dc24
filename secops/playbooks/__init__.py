"""Playbooks: loading, planning and running incident-response steps, and their actions."""
