"""Seq runs: the journal records dispatch, completion and requeues a contiguous run at a time."""

from __future__ import annotations

from collections.abc import Iterable


def seq_runs(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Inclusive ``(first, last)`` runs covering ``seqs`` (any order, repeats allowed).

    Example:
        >>> seq_runs([7, 3, 4, 5, 9])
        [(3, 5), (7, 7), (9, 9)]
    """
    runs: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if runs and runs[-1][1] == seq - 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    return runs
