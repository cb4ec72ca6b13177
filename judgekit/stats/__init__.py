"""Agreement statistics and confidence intervals: pure numpy/scipy, arrays in, numbers out.

Every interval and paired test takes ``groups`` (one key per item): items sharing a question or
article are resampled, summed or flipped together.
"""

from judgekit.stats.agreement import (
    HumanCeiling,
    accuracy,
    cohen_kappa,
    confusion_matrix,
    fleiss_kappa,
    human_ceiling,
    kendall_tau,
    krippendorff_alpha,
    pearson,
    spearman,
)
from judgekit.stats.bootstrap import (
    ConfidenceInterval,
    bootstrap_ci,
    bootstrap_ci_2d,
    mean_ci,
    proportion_ci,
    share_ci,
)
from judgekit.stats.clusters import Groups
from judgekit.stats.paired import permutation_test, sign_test

__all__ = [
    "ConfidenceInterval",
    "Groups",
    "HumanCeiling",
    "accuracy",
    "bootstrap_ci",
    "bootstrap_ci_2d",
    "cohen_kappa",
    "confusion_matrix",
    "fleiss_kappa",
    "human_ceiling",
    "kendall_tau",
    "krippendorff_alpha",
    "mean_ci",
    "pearson",
    "permutation_test",
    "proportion_ci",
    "share_ci",
    "sign_test",
    "spearman",
]
