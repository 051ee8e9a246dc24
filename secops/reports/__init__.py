"""Reports for people: rendered pages (Vietnamese by default) and signed JSON."""
