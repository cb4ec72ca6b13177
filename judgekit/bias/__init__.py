"""Bias control maths: position (order swap), length, and prompt-variant ensembles."""

from judgekit.bias.ensemble import (
    VarianceDecomposition,
    aggregate_variants,
    valid_variant_counts,
    variance_decomposition,
    variant_agreement,
)
from judgekit.bias.length import (
    LengthModel,
    PairwiseLengthModel,
    PointwiseLengthModel,
    answer_lengths,
    correct_distributions,
    fit_pairwise_length,
    fit_pointwise_length,
    length_slope,
    pairwise_length_slope,
    slope_ci_bootstrap,
)
from judgekit.bias.position import PositionStats, combine_orders, position_stats, unswap

__all__ = [
    "LengthModel",
    "PairwiseLengthModel",
    "PointwiseLengthModel",
    "PositionStats",
    "VarianceDecomposition",
    "aggregate_variants",
    "answer_lengths",
    "combine_orders",
    "correct_distributions",
    "fit_pairwise_length",
    "fit_pointwise_length",
    "length_slope",
    "pairwise_length_slope",
    "position_stats",
    "slope_ci_bootstrap",
    "unswap",
    "valid_variant_counts",
    "variance_decomposition",
    "variant_agreement",
]
