"""Certify a judge change: the same calibration records judged by a reference configuration and
a changed one; SAFE / NOT SAFE / INCONCLUSIVE from a non-inferiority test of agreement with
humans and the share of verdicts the change moves (docs/certify.md)."""

from judgekit.audit.certify.config import JudgeConfig, describe_changes
from judgekit.audit.certify.measure import decide_change
from judgekit.audit.certify.run import CertifyOptions, certify_change

__all__ = ["CertifyOptions", "JudgeConfig", "certify_change", "decide_change", "describe_changes"]
