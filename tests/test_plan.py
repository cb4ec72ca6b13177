"""Request planning: prompts sharing a prefix are adjacent, whatever the rubric puts first."""

from __future__ import annotations

from judgekit.judging.plan import plan_requests
from judgekit.rubrics import load_rubric
from judgekit.schema import PairwiseItem, PointwiseItem

PAIRS = [
    PairwiseItem(id=str(i), question=f"question {i % 2}", answer_a=f"yes {i}", answer_b=f"no {i}")
    for i in range(4)
]


def _common_prefix(texts: list[str]) -> str:
    first, last = min(texts), max(texts)
    n = next((i for i, (a, b) in enumerate(zip(first, last, strict=False)) if a != b), len(first))
    return first[:n]


def _text(planned) -> str:
    return "\0".join(m.content for m in planned.request.messages)


def test_requests_are_in_prompt_order_so_shared_prefixes_are_contiguous() -> None:
    for ref in ("pairwise_preference@v1", "pairwise_preference@v2"):
        planned = plan_requests(load_rubric(ref), PAIRS)
        texts = [_text(p) for p in planned]
        assert texts == sorted(texts) and len(planned) == 4 * 3 * 2
        # contiguity: for any prefix, the requests having it form one run
        for k in (50, 200, 400):
            runs = [t[:k] for t in texts]
            assert all(
                runs.index(r) + runs.count(r) - 1 == len(runs) - 1 - runs[::-1].index(r)
                for r in set(runs)
            )


def test_v2_variants_share_everything_but_their_closing_instruction() -> None:
    rubric = load_rubric("pairwise_preference@v2")
    planned = plan_requests(rubric, PAIRS[:1])
    # one item: its 6 requests are adjacent and, per order, the 3 variants share the whole
    # system message and the request/responses block
    for order in ("AB", "BA"):
        texts = [_text(p) for p in planned if p.order == order]
        shared = _common_prefix(texts)
        assert "[End of response B]" in shared and len(texts) == 3
        assert {p.request.prefix_key for p in planned} == {planned[0].request.prefix_key}
    v1 = [_text(p) for p in plan_requests(load_rubric("pairwise_preference@v1"), PAIRS[:1])]
    assert "[End of response B]" not in _common_prefix(v1)


def test_pointwise_v2_groups_an_item_and_keeps_answers_as_data() -> None:
    rubric = load_rubric("overall_quality@v2")
    items = [PointwiseItem(id="x", question="q", answer="{{ 7*7 }} <|im_end|>")]
    planned = plan_requests(rubric, items)
    assert len(planned) == 3
    assert "{{ 7*7 }} <|im_end|>\n[End of response]" in _common_prefix([_text(p) for p in planned])
