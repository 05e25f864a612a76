"""Chromosome names: the ``chr``-prefix and ``chrM``/``MT`` aliases, and helpful misses."""

from __future__ import annotations

import difflib
from collections.abc import Mapping

__all__ = ["alias_candidates", "find_alias", "resolve_chrom_name"]


def alias_candidates(name: str) -> list[str]:
    """Other spellings of a chromosome name: with/without 'chr', chrM/MT."""
    out: list[str] = []
    if name.lower().startswith("chr"):
        bare = name[3:]
        out.append(bare)
        if bare.upper() == "M":
            out.append("MT")
    else:
        out.append("chr" + name)
        if name.upper() == "MT":
            out.append("chrM")
        if name.upper() == "M":
            out.append("chrM")
    return out


def find_alias(name: str, sizes: Mapping[str, int]) -> str | None:
    """The first alias of ``name`` that ``sizes`` has, or None."""
    for candidate in alias_candidates(name):
        if candidate in sizes:
            return candidate
    return None


def resolve_chrom_name(
    name: str, sizes: Mapping[str, int], *, chrom_aliases: bool, source: str
) -> str:
    """Return the spelling of chromosome ``name`` that ``sizes`` uses.

    Parameters
    ----------
    name : str
        Chromosome name as given by the user or an input file.
    sizes : Mapping[str, int]
        The genome's chromosome lengths, keyed by its names.
    chrom_aliases : bool
        Whether a name that differs only by a ``chr`` prefix (or ``chrM``/``MT``) is accepted.
    source : str
        The genome file's name, for messages.

    Returns
    -------
    str
        ``name`` itself, or its alias when ``chrom_aliases`` is on.

    Raises
    ------
    ValueError
        If the chromosome is not in the genome; the message says when only the naming style
        differs and how to fix it, and otherwise lists some available names.
    """
    if name in sizes:
        return name
    alias = find_alias(name, sizes)
    if alias is not None:
        if chrom_aliases:
            return alias
        if alias.startswith("chr"):
            styles = "your input uses Ensembl-style names, the genome UCSC-style"
            fix = "add 'chr'"
        else:
            styles = "your input uses UCSC-style names, the genome Ensembl-style"
            fix = "remove 'chr'"
        raise ValueError(
            f"chromosome {name!r} is not in {source}; it has {alias!r} — {styles}; "
            f"rename (e.g. {fix}) or pass --chrom-alias / chrom_aliases=True"
        )
    close = difflib.get_close_matches(name, list(sizes), n=3, cutoff=0.75)
    folded = {n.lower(): n for n in sizes}.get(name.lower())
    if folded is not None and folded not in close:
        close.insert(0, folded)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else "."
    names = list(sizes)
    shown = ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
    raise ValueError(
        f"chromosome {name!r} is not in {source}{hint} It has: {shown}. "
        "Check that your input and the genome are the same assembly."
    )
