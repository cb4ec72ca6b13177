"""Style features: Arena-Hard-Auto's markdown counts and its v2 feature formula.

The answer below is o3-mini's answer to question ``ddb53371c1c34428`` of Arena-Hard-Auto v2.0
(lmarena/arena-hard-auto, commit 196f6b8, data/arena-hard-v2.0/model_answer/
o3-mini-2025-01-31.jsonl, Apache-2.0), with the counts the publisher's
``utils/add_markdown_info.py`` stored beside it (h1 1; ordered 4, unordered 2; ``__`` 2).
Over all 750 answers of that file judgekit's counts equal the publisher's (docs/leaderboards.md).
"""

from __future__ import annotations

import numpy as np
import pytest

from judgekit.rank import markdown_counts, style_features
from judgekit.rank.style import style_matrix

O3_MINI_FIB = (
    "Below is one extremely efficient implementation using the fast\u2011doubling algorithm. "
    "This method computes the nth Fibonacci number in O(log n) time, making it very efficient "
    "even for very large n. Note that Python\u2019s built-in big integers handle huge numbers "
    "automatically.\n\n"
    'def fib(n):\n    """\n    Returns the nth Fibonacci number using the fast-doubling '
    "algorithm.\n    This method is efficient and runs in O(log n) time.\n    \n    Example:\n"
    '       fib(10) returns 55.\n    """\n    def fib_pair(n):\n        if n == 0:\n'
    "            return (0, 1)\n        a, b = fib_pair(n // 2)\n"
    "        # c = F(2k) = F(k)*[2*F(k+1) \u2212 F(k)]\n        c = a * (2 * b - a)\n"
    "        # d = F(2k+1) = F(k)^2 + F(k+1)^2\n        d = a * a + b * b\n"
    "        if n % 2 == 0:\n            return (c, d)\n        else:\n"
    "            return (d, c + d)\n    \n    return fib_pair(n)[0]\n\n# Example usage:\n"
    'if __name__ == "__main__":\n    n = 100  # Change n to any value you want to compute\n'
    '    print("fib({}) = {}".format(n, fib(n)))\n\nExplanation:\n'
    "1. The helper function fib_pair(n) returns a tuple (F(n), F(n+1)).\n"
    "2. For n = 0, it returns (0, 1).\n"
    "3. For n > 0, it recursively computes fib_pair(n // 2) and uses the doubling formulas:\n"
    "   - F(2k) = F(k) * (2 * F(k+1) - F(k))\n   - F(2k+1) = F(k)^2 + F(k+1)^2\n"
    "4. Depending on whether n is even or odd, it returns the appropriate pair.\n\n"
    "This implementation handles very large values of n efficiently due to its logarithmic time "
    "complexity."
)


def test_counts_equal_the_publishers_on_a_released_answer() -> None:
    assert len(O3_MINI_FIB) == 1434
    assert markdown_counts(O3_MINI_FIB) == (1, 6, 2)


@pytest.mark.parametrize(
    ("text", "counts"),
    [
        ("# A\n## B\n####### not a header\n#no space", (2, 0, 0)),
        ("1. one\n  2. two\n- dash\n* star\n+ plus\n-no space", (0, 5, 0)),
        ("**bold** and __under__ but **not\nacross** lines", (0, 0, 2)),
        # Arena-Hard strips the text between fences (the fences stay), wherever it occurs
        ("```\n# in code\n- item\n```\n# out", (1, 0, 0)),
        ("```b```\n**b**", (0, 0, 0)),
    ],
)
def test_markdown_counts(text: str, counts: tuple[int, int, int]) -> None:
    assert markdown_counts(text) == counts


def test_features_follow_arena_hard_v2_formula() -> None:
    lengths_a, lengths_b = np.array([100.0, 40, 10]), np.array([50.0, 60, 10])
    counts_a = np.array([[2, 4, 0], [0, 1, 1], [0, 0, 0]], float)
    counts_b = np.array([[0, 3, 1], [1, 0, 0], [0, 0, 2]], float)
    raw = style_matrix(lengths_a, counts_a, lengths_b, counts_b)
    # show_result.py: length (a-b)/(a+b); density c/(len+1); feature (da-db)/(da+db+1)
    da, db = counts_a / (lengths_a[:, None] + 1), counts_b / (lengths_b[:, None] + 1)
    expected = np.column_stack(
        [(lengths_a - lengths_b) / (lengths_a + lengths_b), (da - db) / (da + db + 1)]
    )
    np.testing.assert_allclose(raw, expected, rtol=1e-15)


def test_features_are_standardised_with_the_sample_sd() -> None:
    answers_a = ["# T\n- a\n- b\n**x**", "short", "- one item here", "**b** and **c** words"]
    answers_b = ["plain answer text", "# H\nlonger answer text", "x", "- y\n- z"]
    z = style_features(answers_a, answers_b)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-15)
    np.testing.assert_allclose(z.std(axis=0, ddof=1), 1, atol=1e-12)
    only = style_features(answers_a, answers_b, features=("bold", "length"))
    np.testing.assert_allclose(only, z[:, [3, 0]])


def test_a_constant_feature_is_refused() -> None:
    with pytest.raises(ValueError, match="constant"):
        style_features(["**a** text", "plain b"], ["plain", "more plain"])
