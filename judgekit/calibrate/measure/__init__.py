"""Measuring a judge against human labels: its verdicts as arrays, agreement figures, the card
computation, abstention guarantees, slices, annotator models and cascade policies."""
