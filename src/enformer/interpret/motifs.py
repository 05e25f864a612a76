"""Motifs in MEME text format: read letter-probability matrices, consensus, planting.

Used to check interpretation on known biology (a model that has learned a motif should put
its largest contributions on it) and to mark motifs in plots. Only the parts of the MEME
format that JASPAR and MEME-suite exports use are read: ``MOTIF <id> [<name>]`` followed by a
``letter-probability matrix:`` header and ``w`` rows of four probabilities (A, C, G, T).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Motif", "plant_motif", "read_meme"]

_BASES = "ACGT"
_HEADER_RE = re.compile(r"letter-probability matrix:(.*)$")


@dataclass(frozen=True)
class Motif:
    """A position probability matrix.

    Attributes
    ----------
    motif_id : str
        Identifier, e.g. ``'MA0139.2'``.
    name : str
        Alternative name, e.g. ``'CTCF'`` (the ID when the file gives none).
    probabilities : numpy.ndarray
        float64 ``(width, 4)`` in A, C, G, T order; rows sum to 1.
    nsites : int or None
        Number of sites the matrix was built from, when given.
    """

    motif_id: str
    name: str
    probabilities: np.ndarray

    nsites: int | None = None

    @property
    def width(self) -> int:
        """Number of positions."""
        return int(self.probabilities.shape[0])

    @property
    def consensus(self) -> str:
        """Most probable base at every position."""
        return "".join(_BASES[i] for i in self.probabilities.argmax(axis=1))

    def information_content(self) -> np.ndarray:
        """Bits per position against a uniform background, ``(width,)``."""
        p = self.probabilities
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -np.nansum(np.where(p > 0, p * np.log2(p), 0.0), axis=1)
        return 2.0 - h

    def sample(self, rng: np.random.Generator) -> str:
        """Draw one site from the matrix."""
        u = rng.random(self.width)[:, None]
        idx = (u > np.cumsum(self.probabilities, axis=1)).sum(axis=1)
        return "".join(_BASES[min(i, 3)] for i in idx)


def read_meme(path: str | os.PathLike[str]) -> dict[str, Motif]:
    """Read every motif of a MEME-format text file.

    Parameters
    ----------
    path : str or os.PathLike
        MEME v4 text (e.g. a JASPAR export).

    Returns
    -------
    dict of str to Motif
        Keyed by motif ID, in file order.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If a matrix is malformed (wrong number of columns or rows, rows not summing to 1);
        the message names the motif and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"motif file not found: {path}")
    lines = path.read_text(encoding="utf-8").splitlines()
    motifs: dict[str, Motif] = {}
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line.startswith("MOTIF"):
            continue
        parts = line.split()
        if len(parts) < 2:
            raise ValueError(f"{path}, line {i}: MOTIF line without an identifier")
        motif_id = parts[1]
        name = parts[2] if len(parts) > 2 else motif_id
        # Find the matrix header.
        while i < len(lines) and not lines[i].strip().startswith("letter-probability"):
            if lines[i].strip().startswith("MOTIF"):
                raise ValueError(f"{path}, line {i + 1}: motif {motif_id} has no matrix")
            i += 1
        if i >= len(lines):
            raise ValueError(f"{path}: motif {motif_id} has no letter-probability matrix")
        header = _HEADER_RE.search(lines[i].strip())
        i += 1
        info = dict(re.findall(r"(\w+)=\s*(\S+)", header.group(1) if header else ""))
        width = int(info["w"]) if "w" in info else None
        nsites = int(float(info["nsites"])) if "nsites" in info else None
        rows: list[list[float]] = []
        while i < len(lines) and (width is None or len(rows) < width):
            text = lines[i].strip()
            try:
                values = [float(v) for v in text.split()]
            except ValueError:
                break
            if not values:
                break
            if len(values) != 4:
                raise ValueError(
                    f"{path}, line {i + 1}: motif {motif_id} row has {len(values)} values, "
                    "expected 4 (A C G T)"
                )
            rows.append(values)
            i += 1
        probs = np.asarray(rows, dtype=np.float64)
        if probs.size == 0 or (width is not None and probs.shape[0] != width):
            raise ValueError(
                f"{path}: motif {motif_id} has {probs.shape[0]} rows, its header says w={width}"
            )
        if not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
            raise ValueError(f"{path}: rows of motif {motif_id} do not sum to 1")
        motifs[motif_id] = Motif(motif_id, name, probs, nsites)
    return motifs


def plant_motif(sequence: str, site: str, position: int) -> str:
    """Return ``sequence`` with ``site`` written over it from 0-based ``position``.

    Parameters
    ----------
    sequence : str
        The background sequence.
    site : str
        The bases to write.
    position : int
        0-based start; the site must fit inside the sequence.

    Returns
    -------
    str
        A new string of the same length.

    Raises
    ------
    ValueError
        If the site does not fit.
    """
    if not 0 <= position <= len(sequence) - len(site):
        raise ValueError(
            f"a {len(site)}-bp site at {position} does not fit a {len(sequence)}-bp sequence"
        )
    return sequence[:position] + site + sequence[position + len(site) :]
