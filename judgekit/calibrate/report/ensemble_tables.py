"""The card's ensemble section as report tables (rendered with the card's other tables)."""

from __future__ import annotations

from judgekit.calibrate.report.tables import Table
from judgekit.cards.model import CalibrationCard, EnsembleCard


def _ci(x: object) -> str:
    return "n/a" if x is None else x.format()  # type: ignore[attr-defined]


def ensemble_tables(card: CalibrationCard) -> list[Table]:
    """Combinations compared (chosen one marked), calibration, abstention per target."""
    section: EnsembleCard | None = card.ensemble
    if section is None:
        return []
    compare = Table(
        f"Prompt combinations (chosen: {section.chosen}; {section.reason})",
        ("method", "dev kappa (learned: out-of-fold)", f"{card.split.name} kappa [95% CI]",
         "invalid"),
        [
            (
                ("* " if r.method == section.chosen else "") + r.method,
                "n/a" if r.dev_kappa is None else f"{r.dev_kappa:.3f}",
                _ci(r.heldout_kappa),
                str(r.n_invalid),
            )
            for r in section.comparison
        ],
    )  # fmt: skip
    ece = section.expected_calibration_error
    ece_text = "n/a" if ece is None else f"{ece:.3f}"
    model = section.model
    fit = Table(
        "Learned ensemble (fitted on dev, frozen)",
        ("", ""),
        [
            ("dev items fitted (left out: no label consensus)", f"{model.n} ({model.n_dropped})"),
            ("L2 (5-fold CV log loss on dev)", f"{model.l2:g} ({model.dev_cv_log_loss})"),
            ("dev out-of-fold accuracy", f"{model.dev_cv_accuracy:.3f}"),
            (f"expected calibration error ({card.split.name})", ece_text),
        ],
    )  # fmt: skip
    abstain = Table(
        f"Abstention (confidence: {section.confidence_rule})",
        ("target", "alpha", "dev threshold", "dev lower bound", "kept", "coverage",
         "agreement on kept [95% CI]", "met"),
        [
            (
                f"{p.target:g}", f"{p.alpha:g}",
                "none: keeps nothing" if p.threshold is None else f"{p.threshold:.2f}",
                "n/a" if p.lower_bound is None else f"{p.lower_bound:.3f}",
                f"{p.n_kept}/{p.n}", f"{p.coverage:.2f}", _ci(p.agreement_kept),
                "n/a" if p.met is None else ("yes" if p.met else "NO"),
            )
            for p in section.abstention
        ],
    )  # fmt: skip
    return [compare, fit, abstain]
