"""Audits of a judge beyond agreement: gaming canaries and drift over time."""
