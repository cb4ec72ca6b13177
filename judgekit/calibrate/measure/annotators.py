"""Which human annotators to trust: latent-class models over a calibration set's raw labels.

A judge is calibrated against human labels, so an unreliable annotator (or a plurality that hides
one) caps every figure on the card. crowd-kit (Apache-2.0) fits the standard models; judgekit does
not write them again:

- ``majority``: plurality vote (the set's own consensus), the baseline;
- ``dawid-skene``: one full confusion matrix per annotator (Dawid & Skene 1979);
- ``glad``: one ability per annotator and one difficulty per item (Whitehill et al. 2009);
- ``mace``: an annotator is competent or spams with a label preference (Hovy et al. 2013).

Every model yields a posterior over the true label per item. Reliability is then measured the same
way for all of them, so models can be compared: an annotator's expected agreement with the
posterior (mean posterior probability of the label they gave), and a confusion matrix of the
posterior true label (rows) against the label given (columns). Each model's own parameter (the
Dawid-Skene diagonal weighted by the class prior, GLAD's alpha, MACE's competence, majority-vote
skill) is reported beside it as ``native``.

The models need to know who gave each label: ``record.human[j]`` is the label of the set's
``annotator_names[j]``. Anonymous labels (votes without an annotator column, a list field) are
refused, never modelled by position. ``inter_annotator_agreement`` gives the table papers publish
(pairwise Cohen's kappa, Fleiss' kappa, Krippendorff's alpha); the last two need no identities.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from itertools import combinations
from typing import Literal, get_args

import numpy as np
import pandas as pd
from pydantic import Field

from judgekit.data.sets import CalibrationRecord, DatasetError
from judgekit.schema import StrictModel
from judgekit.stats import cohen_kappa, fleiss_kappa, krippendorff_alpha

ConsensusMethod = Literal["majority", "dawid-skene", "glad", "mace"]
METHODS: tuple[str, ...] = get_args(ConsensusMethod)
Human = str | float


class AnnotatorStats(StrictModel):
    """One annotator under one model."""

    name: str
    n_labels: int
    reliability: float
    native: float | None
    confusion: list[list[float | None]]


class ItemConsensus(StrictModel):
    """The posterior consensus of one item: its label (None when the top two tie) and confidence."""

    id: str
    label: str | None
    confidence: float
    posterior: dict[str, float]


class AnnotatorFit(StrictModel):
    """One model fitted on one set: per-annotator reliability and the per-item consensus."""

    method: ConsensusMethod
    labels: list[str]
    native_parameter: str
    annotators: list[AnnotatorStats]
    items: list[ItemConsensus]

    def reliability(self) -> dict[str, float]:
        return {a.name: a.reliability for a in self.annotators}


NATIVE = {
    "majority": "skill (agreement with the vote)",
    "dawid-skene": "prior-weighted diagonal of the confusion matrix",
    "glad": "alpha (ability)",
    "mace": "P(competent)",
}


def category(value: Human) -> str:
    """A label as a category name: strings as they are, numbers without a trailing ``.0``."""
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)


def _identified(names: Sequence[str] | None, what: str) -> Sequence[str]:
    """The annotator names, or a refusal: positions of anonymous labels name nobody."""
    if names is None:
        raise DatasetError(
            f"{what} needs to know which annotator gave each label, but this set's labels are "
            "anonymous (votes without an annotator column, or a list field): name the voter with "
            "`annotators: {votes: ..., annotator: FIELD}` in the manifest (own files: "
            "--annotator-column), or use the majority consensus"
        )
    return names


def annotations_frame(
    records: Sequence[CalibrationRecord], names: Sequence[str], drop: Sequence[str] = ()
) -> pd.DataFrame:
    """crowd-kit's long format: one row per (task, worker, label); missing labels are left out.

    ``names`` is the set's ``annotator_names``: ``record.human[j]`` is ``names[j]``'s label.
    """
    for r in records:
        if len(r.human) != len(names):
            raise DatasetError(
                f"record {r.id!r} has {len(r.human)} labels for {len(names)} annotator names"
            )
    rows = [
        (r.id, names[j], category(h))
        for r in records
        for j, h in enumerate(r.human)
        if h is not None and names[j] not in drop
    ]
    return pd.DataFrame(rows, columns=["task", "worker", "label"])


def _model(method: ConsensusMethod, seed: int) -> object:
    from crowdkit.aggregation import GLAD, MACE, DawidSkene, MajorityVote

    if method == "majority":
        return MajorityVote()
    if method == "dawid-skene":
        return DawidSkene(n_iter=100)
    if method == "glad":
        return GLAD(n_iter=100)
    return MACE(n_iter=50, random_state=seed)


def _native(method: ConsensusMethod, model: object, workers: list[str]) -> dict[str, float]:
    if method == "majority":
        skills = model.skills_  # type: ignore[attr-defined]
        return {w: float(skills[w]) for w in workers}
    if method == "dawid-skene":
        errors, priors = model.errors_, model.priors_  # type: ignore[attr-defined]
        # crowd-kit keeps rows only for labels a worker gave: one never given has P = 0
        gave = set(errors.index)
        return {
            w: float(sum(priors[c] * errors.loc[(w, c), c] for c in priors.index if (w, c) in gave))
            for w in workers
        }
    if method == "glad":
        alphas = model.alphas_  # type: ignore[attr-defined]
        return {w: float(alphas[w]) for w in workers}
    return dict(zip(workers, model.spamming_[:, 1].astype(float), strict=True))  # type: ignore[attr-defined]


def fit_annotators(
    records: Sequence[CalibrationRecord],
    method: ConsensusMethod,
    *,
    names: Sequence[str] | None,
    drop: Sequence[str] = (),
    seed: int = 0,
) -> AnnotatorFit:
    """Fit one model on every record's annotations (``drop``: annotators left out entirely).

    ``names`` is the set's ``annotator_names``; None (anonymous labels) is refused, as every model
    here, majority's per-annotator skill included, is about individual annotators. Items without
    any label are left out. A consensus whose top two posterior probabilities are equal is a tie
    (label None), never a pick.
    """
    if method not in METHODS:
        raise DatasetError(f"unknown consensus method {method!r}; one of {list(METHODS)}")
    data = annotations_frame(records, _identified(names, method), drop)
    if data.empty or data["worker"].nunique() < 2:
        raise DatasetError("annotator models need two or more annotators with labels")
    model = _model(method, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas FutureWarnings from inside crowd-kit
        posterior = model.fit_predict_proba(data)  # type: ignore[attr-defined]
    labels = sorted(data["label"].unique())
    posterior = posterior.reindex(columns=labels, fill_value=0.0).fillna(0.0)
    workers = list(pd.unique(data["worker"]))
    native = _native(method, model, workers)
    given = data.join(posterior, on="task")
    stats = []
    for worker in workers:
        rows = given[given["worker"] == worker]
        probs = rows[labels].to_numpy()
        agreement = probs[np.arange(len(rows)), [labels.index(x) for x in rows["label"]]]
        observed = (rows["label"].to_numpy()[:, None] == np.array(labels)[None, :]).astype(float)
        mass = probs.T @ observed  # true label (rows) x given label (columns)
        totals = mass.sum(axis=1, keepdims=True)
        confusion = [
            [float(v) if t > 0 else None for v in row]
            for row, t in zip(mass / np.where(totals > 0, totals, 1.0), totals[:, 0], strict=True)
        ]
        stats.append(
            AnnotatorStats(
                name=worker,
                n_labels=len(rows),
                reliability=float(agreement.mean()),
                native=native.get(worker),
                confusion=confusion,
            )
        )
    items = []
    for task, row in posterior.iterrows():
        p = row.to_numpy(dtype=float)
        top = np.sort(p)[::-1]
        tied = len(top) > 1 and np.isclose(top[0], top[1], atol=1e-9)
        items.append(
            ItemConsensus(
                id=str(task),
                label=None if tied else labels[int(np.argmax(p))],
                confidence=float(top[0]),
                posterior={lab: float(v) for lab, v in zip(labels, p, strict=True)},
            )
        )
    return AnnotatorFit(
        method=method,
        labels=labels,
        native_parameter=NATIVE[method],
        annotators=stats,
        items=items,
    )


def consensus_records(
    records: Sequence[CalibrationRecord],
    method: ConsensusMethod,
    *,
    min_reliability: float | None = None,
    label_type: str = "pairwise",
    names: Sequence[str] | None = None,
    seed: int = 0,
) -> tuple[list[CalibrationRecord], AnnotatorFit | None, list[str]]:
    """Records with the consensus replaced by ``method``'s, and the annotators dropped.

    Annotators whose reliability (under ``method``) is below ``min_reliability`` are dropped: the
    model is refitted without them and their labels are removed from ``human``, so the human
    ceiling is computed over the kept annotators. The model sees human labels only (never a
    judge's), so fitting it on the whole set leaks nothing into a held-out split. Ordinal sets get
    the posterior mean value, as the majority consensus is their mean. With ``majority`` and no
    threshold the records come back unchanged (anonymous labels are fine there; anything else needs
    ``names``). Returns (records, fit, dropped annotator names): ``human`` loses the dropped
    annotators' positions, so the caller's names are those of ``names`` not dropped.
    """
    if method == "majority" and min_reliability is None:
        return list(records), None, []
    threshold = "" if min_reliability is None else f" with min_reliability={min_reliability}"
    names = _identified(names, f"consensus {method!r}{threshold}")
    fit = fit_annotators(records, method, names=names, seed=seed)
    dropped: list[str] = []
    if min_reliability is not None:
        dropped = [a.name for a in fit.annotators if a.reliability < min_reliability]
        if dropped:
            fit = fit_annotators(records, method, names=names, drop=dropped, seed=seed)
    by_id = {item.id: item for item in fit.items}
    values: dict[str, Human] = {category(h): h for r in records for h in r.human if h is not None}
    out = []
    for record in records:
        human = tuple(h for j, h in enumerate(record.human) if names[j] not in dropped)
        item = by_id.get(record.id)
        consensus: Human | None
        if item is None:
            consensus = None
        elif label_type == "ordinal":
            consensus = float(sum(float(values[lab]) * p for lab, p in item.posterior.items()))
        else:
            consensus = None if item.label is None else values[item.label]
        out.append(record.model_copy(update={"human": human, "consensus": consensus}))
    return out, fit, dropped


# --- the inter-annotator agreement table -------------------------------------------------------


class PairKappa(StrictModel):
    """Cohen's kappa between two annotators on the items both labelled."""

    a: str
    b: str
    n_items: int
    kappa: float


class InterAnnotatorAgreement(StrictModel):
    """The agreement table papers publish: pairwise Cohen's kappa, Fleiss' kappa, Krippendorff's
    alpha. Point values: no intervals yet (a cluster bootstrap needs ``bootstrap_ci(groups=)``)."""

    label_type: str
    n_items: int = Field(description="Items with at least one label.")
    annotators: list[str] | None = Field(description="The set's annotator names; None: anonymous.")
    kappa_weights: Literal["quadratic"] | None = Field(
        description="Cohen's kappa weights: quadratic on ordinal sets, none otherwise."
    )
    pairs: list[PairKappa] = Field(
        description="Annotator pairs sharing two or more items; empty when labels are anonymous."
    )
    mean_pairwise_kappa: float | None
    fleiss_kappa: float | None = Field(
        description="None unless every labelled item has the same number (>= 2) of labels."
    )
    fleiss_n_items: int
    krippendorff_alpha: float
    alpha_level: Literal["nominal", "ordinal"]
    alpha_n_items: int = Field(description="Items with two or more labels (alpha uses those).")
    notes: list[str]


def _pair_kappas(
    records: Sequence[CalibrationRecord], names: Sequence[str], weights: Literal["quadratic"] | None
) -> list[PairKappa]:
    """Every annotator pair that shares two or more items, on those items."""
    values = sorted({h for r in records for h in r.human if h is not None})  # one type per set
    pairs = []
    for i, j in combinations(range(len(names)), 2):
        both = [
            (r.human[i], r.human[j])
            for r in records
            if r.human[i] is not None and r.human[j] is not None
        ]
        if len(both) >= 2:
            x, y = zip(*both, strict=True)
            kappa = cohen_kappa(list(x), list(y), labels=values, weights=weights)
            pairs.append(PairKappa(a=names[i], b=names[j], n_items=len(both), kappa=kappa))
    return pairs


def inter_annotator_agreement(
    records: Sequence[CalibrationRecord], names: Sequence[str] | None, label_type: str
) -> InterAnnotatorAgreement:
    """Pairwise Cohen's kappa (needs ``names``), Fleiss' kappa and Krippendorff's alpha.

    Fleiss and alpha depend only on how many labels of each value an item got, not on who gave
    them, so they are also computed on anonymous labels. Pairwise kappa is quadratic-weighted on
    ordinal sets (as the card's human ceiling), unweighted otherwise; Fleiss' kappa treats labels
    as nominal; alpha is ordinal on ordinal sets, nominal otherwise. The statistics are
    ``judgekit.stats``' (checked there against scikit-learn, statsmodels and krippendorff).
    """
    ordinal = label_type == "ordinal"
    labelled = [[h for h in r.human if h is not None] for r in records]
    counts = {len(x) for x in labelled if x}
    width = max(counts, default=0)
    if width < 2:
        raise DatasetError("inter-annotator agreement needs an item with two or more labels")
    notes = []
    if names is None:
        notes.append("labels are anonymous: no pairwise kappa (it needs annotator identities)")
    pairs = [] if names is None else _pair_kappas(records, names, "quadratic" if ordinal else None)
    fleiss = None
    if len(counts) == 1 and min(counts) >= 2:
        fleiss = fleiss_kappa(np.array([x for x in labelled if x], dtype=object))
    else:
        notes.append(
            f"no Fleiss' kappa: items have {sorted(counts)} labels; it needs one number >= 2"
        )
    values = sorted({h for x in labelled for h in x})
    code = {v: (float(v) if ordinal else float(k)) for k, v in enumerate(values)}
    matrix = np.full((width, len(labelled)), np.nan)
    for i, x in enumerate(labelled):
        matrix[: len(x), i] = [code[h] for h in x]
    level: Literal["nominal", "ordinal"] = "ordinal" if ordinal else "nominal"
    return InterAnnotatorAgreement(
        label_type=label_type,
        n_items=sum(1 for x in labelled if x),
        annotators=None if names is None else list(names),
        kappa_weights="quadratic" if ordinal else None,
        pairs=pairs,
        mean_pairwise_kappa=float(np.mean([p.kappa for p in pairs])) if pairs else None,
        fleiss_kappa=fleiss,
        fleiss_n_items=sum(1 for x in labelled if x) if fleiss is not None else 0,
        krippendorff_alpha=krippendorff_alpha(matrix, level=level),
        alpha_level=level,
        alpha_n_items=sum(1 for x in labelled if len(x) >= 2),
        notes=notes,
    )
