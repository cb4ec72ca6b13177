"""Corrections fitted on the dev split and frozen into the card: the learned prompt-variant
ensemble and the length model (each decided on dev, measured on the card's split)."""
