"""A calibration card as a list of tables, the one source both report formats are rendered from."""

from __future__ import annotations

import json
from dataclasses import dataclass

from judgekit.calibrate.measure.card import CalibrationCard, Interval
from judgekit.cards.model import LengthFigure


@dataclass(frozen=True)
class Table:
    title: str
    header: tuple[str, ...]
    rows: list[tuple[str, ...]]


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _ci(x: Interval | None) -> str:
    return "n/a" if x is None else x.format()


def headline_table(card: CalibrationCard) -> Table:
    rows = [
        ("verdict", "TRUSTED" if card.verdict.trusted else "NOT TRUSTED"),
        ("items compared (n)", str(card.n)),
        ("invalid verdicts", f"{card.n_invalid} ({card.invalid_rate:.1%})"),
        ("kappa, invalid counted as disagreement (headline)", _ci(card.kappa)),
        ("kappa, valid verdicts only", _ci(card.kappa_valid_only)),
        ("accuracy, invalid counted as wrong", _ci(card.accuracy)),
        ("trust metric", card.trust_metric),
    ]
    if card.ordinal is not None:
        rows.append(("quadratic weighted kappa", _ci(card.ordinal.weighted_kappa_quadratic)))
    if card.human_ceiling is not None:
        rows.append(("judge / human-ceiling ratio", _f(card.human_ceiling.ratio)))
    return Table("Headline", ("", ""), rows)


def card_tables(card: CalibrationCard) -> list[Table]:
    """Every table of the report, in reading order: provenance, agreement, bias, thresholds."""
    return [
        _provenance_table(card),
        _confusion_table(card),
        *_ordinal_tables(card),
        *_alpha_tables(card),
        *_ceiling_tables(card),
        *_per_variant_tables(card),
        *_variant_tables(card),
        *_position_tables(card),
        *_length_tables(card),
        *_reliability_tables(card),
        _thresholds_table(card),
    ]


def _provenance_table(card: CalibrationCard) -> Table:
    """What the card is about and where its numbers came from."""
    split = card.split
    return Table(
        "Provenance",
        ("", ""),
        [
            ("rubric", f"{card.rubric_ref} ({card.rubric_hash})"),
            ("judge", f"{card.judge_model} (fingerprint {card.judge_fingerprint})"),
            ("calibration set", f"{card.set_name} (sha256 {card.set_sha256})"),
            (
                "split",
                f"{split.name}: {split.n_split} of {split.n_set} records "
                f"in {split.n_groups} groups by {split.group_by} "
                f"(held-out fraction {split.heldout_fraction}, salt {split.salt})",
            ),
            ("judge settings", json.dumps(card.judge_settings, sort_keys=True)),
            ("left out", f"{card.n_no_consensus} without a human consensus"),
            ("missing outputs", f"{card.n_missing_outputs} (counted invalid)"),
            ("judge outputs", card.outputs_source),
            ("created", f"{card.created}, judgekit {card.judgekit_version}"),
            ("card key", card.key),
        ],
    )


def _confusion_table(card: CalibrationCard) -> Table:
    return Table(
        "Confusion matrix (rows: human consensus, columns: judge)",
        ("human \\ judge", *card.confusion.columns),
        [
            (row, *(str(c) for c in counts))
            for row, counts in zip(card.confusion.rows, card.confusion.counts, strict=True)
        ],
    )


def _ordinal_tables(card: CalibrationCard) -> list[Table]:
    if (o := card.ordinal) is None:
        return []
    return [
        Table(
            "Ordinal agreement (valid verdicts)",
            ("metric", "estimate [95% CI]"),
            [
                ("linear weighted kappa", _ci(o.weighted_kappa_linear)),
                ("quadratic weighted kappa", _ci(o.weighted_kappa_quadratic)),
                ("spearman (score vs human mean)", _ci(o.spearman)),
                ("kendall tau-b", _ci(o.kendall)),
                ("pearson", _ci(o.pearson)),
            ],
        )
    ]


def _alpha_tables(card: CalibrationCard) -> list[Table]:
    if not card.alpha:
        return []
    return [
        Table(
            "Krippendorff's alpha, judge as one more rater",
            ("level", "estimate [95% CI]"),
            [(level, _ci(value)) for level, value in card.alpha.items()],
        )
    ]


def _ceiling_tables(card: CalibrationCard) -> list[Table]:
    if (c := card.human_ceiling) is None:
        return []
    return [
        Table(
            f"Human ceiling ({c.metric})",
            ("", ""),
            [
                ("annotators", str(c.n_annotators)),
                ("mean annotator-annotator", _f(c.mean_pairwise_annotator)),
                ("judge vs full consensus", _f(c.judge_vs_consensus)),
                ("human vs others' majority (leave-one-out)", _f(c.mean_loo_human)),
                ("judge vs the same majorities", _f(c.mean_loo_judge)),
                ("ratio", _f(c.ratio)),
                ("consensus ties dropped", str(c.ties_dropped)),
                ("invalid verdicts", c.invalid_handling),
            ],
        )
    ]


def _per_variant_tables(card: CalibrationCard) -> list[Table]:
    """Each prompt variant's agreement alone, then the ensemble's (the card's verdict)."""
    if not card.per_variant:
        return []
    rows = [(v.variant, _ci(v.kappa), _ci(v.spearman), str(v.n_invalid)) for v in card.per_variant]
    rows.append(
        (
            "ensemble (the verdict)",
            _ci(card.kappa),
            _ci(card.ordinal.spearman) if card.ordinal else "n/a",
            str(card.n_invalid),
        )
    )
    return [
        Table(
            "Per prompt variant",
            ("variant", "kappa [95% CI]", "spearman [95% CI]", "invalid"),
            rows,
        )
    ]


def _position_tables(card: CalibrationCard) -> list[Table]:
    if (p := card.position) is None:
        return []
    return [
        Table(
            "Position bias",
            ("", "estimate [95% CI]"),
            [
                ("flip rate (verdict changes with order)", _ci(p.flip_rate)),
                ("first-position pick rate, before swap (per order)", _ci(p.first_pick_before)),
                ("answer-A (first in AB) pick rate, after soft swap", _ci(p.first_pick_after)),
                ("valid / invalid items", f"{p.n_valid} / {p.n_invalid}"),
            ],
        )
    ]


def _reliability_tables(card: CalibrationCard) -> list[Table]:
    if not card.reliability:
        return []
    return [
        Table(
            f"Reliability (expected calibration error {_f(card.expected_calibration_error)})",
            ("probability bin", "items", "mean probability", "human agreement"),
            [
                (
                    f"[{b.low:.1f}, {b.high:.1f}{']' if b.high >= 1.0 else ')'}",
                    str(b.n),
                    _f(b.mean_probability),
                    _f(b.human_agreement),
                )
                for b in card.reliability
            ],
        )
    ]


def _thresholds_table(card: CalibrationCard) -> Table:
    t = card.thresholds
    return Table(
        "Thresholds",
        ("check", "threshold"),
        [
            ("trust metric 95% CI lower bound", f">= {t.min_kappa_ci_low}"),
            ("judge / human-ceiling ratio", f">= {t.min_ceiling_ratio}"),
            ("invalid rate", f"<= {t.max_invalid_rate}"),
            ("items", f">= {t.min_n}"),
        ],
    )


def _slope(figure: LengthFigure | None) -> tuple[str, str, str]:
    if figure is None:
        return ("n/a", "n/a", "")
    return (
        figure.model,
        f"{figure.slope:.3f} [{figure.ci_low:.3f}, {figure.ci_high:.3f}]",
        str(figure.n),
    )


def _length_tables(card: CalibrationCard) -> list[Table]:
    """Length slope on this split, and with a frozen dev model: the slope and agreement
    before/after the correction plus the coefficients, so a reader can check what moved."""
    rows = []
    if card.length is not None:
        rows.append(("as judged (this split's own length scale)", *_slope(card.length)))
    if card.length_model is not None:
        rows.append(("before the frozen correction", *_slope(card.length_before)))
        rows.append(("after the frozen correction", *_slope(card.length_after)))
    if not rows:
        return []
    tables = [Table("Length bias", ("", "model", "slope [95% CI]", "n"), rows)]
    if (stored := card.length_model) is not None:
        coefficients = stored["coefficients"]
        tables.append(
            Table(
                f"Frozen length model ({stored['kind']}, fitted on {stored['fitted_on']}, "
                f"n = {stored['n']}; lengths in {stored['length_unit']})",
                ("coefficient", "value"),
                [
                    (name, "n/a" if value is None else f"{value:.4g}")
                    for name, value in coefficients.items()
                ],
            )
        )
    if card.length_agreement:
        tables.append(
            Table(
                "Agreement before / after the length correction",
                ("metric", "before [95% CI]", "after [95% CI]"),
                [(a.metric, _ci(a.before), _ci(a.after)) for a in card.length_agreement],
            )
        )
    return tables


def _variant_tables(card: CalibrationCard) -> list[Table]:
    """Agreement across prompt variants and where the score variance comes from."""
    tables = []
    if card.variant_alpha:
        tables.append(
            Table(
                "Krippendorff's alpha across prompt variants (variants as raters)",
                ("level", "estimate [95% CI]"),
                [(level, _ci(value)) for level, value in card.variant_alpha.items()],
            )
        )
    if (v := card.variance) is not None:
        truncated = (
            f"; negative estimates set to 0: {', '.join(v.truncated)}" if v.truncated else ""
        )
        tables.append(
            Table(
                f"Variance decomposition of per-variant scores ({v.n_items} items x "
                f"{v.n_variants} variants, {v.n_dropped} items dropped{truncated})",
                ("component", "variance", "share"),
                [
                    ("item (what the judge should measure)", f"{v.item_var:.4g}", _f(v.item_share)),
                    (
                        "variant (wording shifts all items)",
                        f"{v.variant_var:.4g}",
                        _f(v.variant_share),
                    ),
                    (
                        "residual (wordings disagree item by item)",
                        f"{v.residual_var:.4g}",
                        _f(v.residual_share),
                    ),
                ],
            )
        )
    return tables


# --------------------------------------------------------------------------- plots for a card
