"""The :class:`Genome` reader: an indexed reference FASTA with names, windows and N-padding."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, NamedTuple

from ..sequence import COMPLEMENT, first_invalid
from .fasta import FastaReader, open_fasta
from .names import find_alias, resolve_chrom_name
from .regions import Interval, as_int

__all__ = ["Genome", "GenomeWarning", "Window"]


class GenomeWarning(UserWarning):
    """Warning about genome access, e.g. a window that ran off a chromosome end.

    Silence it with ``warnings.filterwarnings("ignore", category=GenomeWarning)`` or, for the
    padding warning of one genome, ``Genome(path, warn_padding=False)``.
    """


class Window(NamedTuple):
    """A centred genome window: its interval and its sequence (upper-case, N-padded)."""

    interval: Interval
    sequence: str


class Genome:
    """An indexed reference genome (plain or bgzip-compressed FASTA).

    Parameters
    ----------
    fasta_path : str or os.PathLike
        FASTA file, plain or bgzip-compressed, with its ``.fai`` index (and ``.gzi`` for bgzip).
        A missing index is built beside the file (this takes a few seconds per gigabase).
    chrom_aliases : bool, optional
        If True, chromosome names that differ from the FASTA's only by a ``chr`` prefix (and
        ``chrM``/``MT``) are mapped automatically. If False (the default) such names raise a
        ValueError explaining the mismatch.
    warn_padding : bool, optional
        Emit a :class:`GenomeWarning` when a fetched window runs off a chromosome end and is
        padded with N (default True).
    backend : {'auto', 'pysam', 'pyfaidx'}, optional
        Reader; ``'auto'`` uses pysam when installed, else pyfaidx (which needs biopython for
        bgzip files).

    Raises
    ------
    FileNotFoundError
        If the FASTA file does not exist.
    ValueError
        If the file is not a FASTA file, is gzip- rather than bgzip-compressed, is corrupt, or
        cannot be indexed.
    ImportError
        If neither pysam nor pyfaidx is installed.

    Notes
    -----
    A Genome may be pickled (it reopens the file on unpickling) and reopens its handle in a
    forked child process, so it can be used in DataLoader workers. Use it as a context manager
    or call :meth:`close`.
    """

    def __init__(
        self,
        fasta_path: str | os.PathLike[str],
        *,
        chrom_aliases: bool = False,
        warn_padding: bool = True,
        backend: Literal["auto", "pysam", "pyfaidx"] = "auto",
    ) -> None:
        self.path = Path(fasta_path)
        self.chrom_aliases = bool(chrom_aliases)
        self.warn_padding = bool(warn_padding)
        self.backend = backend
        self._closed = False
        self._reader: FastaReader | None = None
        self._pid = os.getpid()
        self._reader = self._open()
        self._sizes: dict[str, int] = dict(self._reader.sizes)

    # ---- opening ------------------------------------------------------------------------

    def _open(self) -> FastaReader:
        return open_fasta(self.path, self.backend)

    def _handle(self) -> FastaReader:
        if self._closed or self._reader is None:
            raise ValueError(f"Genome {self.path.name} is closed")
        if os.getpid() != self._pid:  # forked child: never share a file handle with the parent
            self._reader = self._open()
            self._pid = os.getpid()
        return self._reader

    # ---- names and sizes ----------------------------------------------------------------

    @property
    def chrom_sizes(self) -> dict[str, int]:
        """Chromosome lengths in FASTA order (a copy)."""
        return dict(self._sizes)

    def __contains__(self, chrom: object) -> bool:
        """Whether ``chrom`` names a sequence (also via aliases when ``chrom_aliases`` is on)."""
        if not isinstance(chrom, str):
            return False
        if chrom in self._sizes:
            return True
        return self.chrom_aliases and self._alias(chrom) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._sizes)

    def __len__(self) -> int:
        return len(self._sizes)

    def _alias(self, name: str) -> str | None:
        return find_alias(name, self._sizes)

    def resolve_chrom(self, name: str) -> str:
        """Return the FASTA's name for chromosome ``name``.

        Parameters
        ----------
        name : str
            Chromosome name as given by the user or an input file.

        Returns
        -------
        str
            ``name`` itself if the FASTA has it; with ``chrom_aliases=True``, the FASTA's
            spelling when the two differ only by a ``chr`` prefix (``1``/``chr1``,
            ``MT``/``chrM``).

        Raises
        ------
        ValueError
            If the chromosome is not in the genome. When only the naming style differs, the
            message says so and how to fix it; otherwise it lists some available names.
        """
        return resolve_chrom_name(
            name, self._sizes, chrom_aliases=self.chrom_aliases, source=self.path.name
        )

    # ---- sequence -----------------------------------------------------------------------

    def fetch(self, chrom: str, start: int, end: int) -> str:
        """Return the upper-case sequence of ``[start, end)`` on ``chrom`` (0-based).

        Positions outside ``[0, chromosome length)`` are filled with ``N`` and, unless
        ``warn_padding`` is off, one :class:`GenomeWarning` says the window ran off the
        chromosome end.

        Parameters
        ----------
        chrom : str
            Chromosome name (resolved with :meth:`resolve_chrom`).
        start : int
            0-based start; may be negative.
        end : int
            0-based exclusive end, ``end >= start``.

        Returns
        -------
        str
            Exactly ``end - start`` characters.

        Raises
        ------
        ValueError
            If the chromosome is unknown, ``end < start``, the range does not overlap the
            chromosome at all (usually a different assembly), the file cannot be read, or the
            range holds a character that is not a nucleotide code (named with its coordinate).
        """
        name = self.resolve_chrom(chrom)
        start, end = as_int(start), as_int(end)
        if end < start:
            raise ValueError(f"end ({end}) is before start ({start}) for {name}")
        length = self._sizes[name]
        if end == start:
            return ""
        if end <= 0 or start >= length:
            raise ValueError(
                f"{name}:{start}-{end} (0-based) lies entirely outside {name}, which has "
                f"{length:,} bases in {self.path.name}; is the input on the same assembly?"
            )
        lo, hi = max(start, 0), min(end, length)
        reader = self._handle()
        try:
            seq = reader.fetch(name, lo, hi)
        except (ValueError, OSError) as err:
            raise ValueError(
                f"failed to read {name}:{lo}-{hi} from {self.path}: the file may be corrupt or "
                f"its index stale (rebuild it with `samtools faidx`) ({err})"
            ) from err
        if len(seq) != hi - lo:
            raise ValueError(
                f"read {len(seq)} bases instead of {hi - lo} for {name}:{lo}-{hi} from "
                f"{self.path}: the index does not match the file (rebuild it with "
                "`samtools faidx`)"
            )
        seq = seq.upper()
        bad = first_invalid(seq)
        if bad is not None:
            raise ValueError(
                f"{self.path.name} has {seq[bad]!r} at {name}:{lo + bad + 1:,} (1-based), not "
                "a nucleotide code (A, C, G, T, N or IUPAC): the FASTA is damaged or not DNA"
            )
        left, right = lo - start, end - hi
        if left or right:
            if self.warn_padding:
                warnings.warn(
                    f"window {name}:{start}-{end} (0-based) runs off the chromosome end "
                    f"({name} spans 0-{length:,}); padded with {left} N on the left and "
                    f"{right} N on the right",
                    GenomeWarning,
                    stacklevel=2,
                )
            seq = "N" * left + seq + "N" * right
        return seq

    def fetch_interval(self, interval: Interval, *, stranded: bool = False) -> str:
        """Return the sequence of an :class:`Interval` (see :meth:`fetch`).

        Parameters
        ----------
        interval : Interval
            The interval; its start may be negative.
        stranded : bool, optional
            If True and ``interval.strand == '-'``, return the reverse complement.

        Returns
        -------
        str
            Upper-case sequence, N-padded outside the chromosome.
        """
        seq = self.fetch(interval.chrom, interval.start, interval.end)
        if stranded and interval.strand == "-":
            seq = seq.translate(COMPLEMENT)[::-1]
        return seq

    def window(self, chrom: str, center: int, width: int) -> Window:
        """Return the ``width``-bp window centred on 0-based position ``center``.

        The window is ``[center - width // 2, center - width // 2 + width)``, so the base at
        ``center`` is at index ``width // 2`` of the sequence (98,304 for 196,608 bp).

        Parameters
        ----------
        chrom : str
            Chromosome name (resolved with :meth:`resolve_chrom`).
        center : int
            0-based position of the centre base; must lie on the chromosome.
        width : int
            Window length (> 0).

        Returns
        -------
        Window
            ``(interval, sequence)``; the interval uses the FASTA's chromosome name and may
            extend past the chromosome ends, where the sequence is N-padded.
        """
        name = self.resolve_chrom(chrom)
        center, width = as_int(center), as_int(width)
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        length = self._sizes[name]
        if not 0 <= center < length:
            raise ValueError(
                f"centre {center:,} (0-based) is outside {name} (length {length:,}) in "
                f"{self.path.name}; is the input on the same assembly?"
            )
        start = center - width // 2
        interval = Interval(name, start, start + width)
        return Window(interval, self.fetch(name, interval.start, interval.end))

    # ---- lifetime -----------------------------------------------------------------------

    def close(self) -> None:
        """Close the file handle (idempotent)."""
        if self._reader is not None and not self._closed:
            self._reader.close()
        self._reader = None
        self._closed = True

    def __enter__(self) -> Genome:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "chrom_aliases": self.chrom_aliases,
            "warn_padding": self.warn_padding,
            "backend": self.backend,
            "closed": self._closed,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["path"],
            chrom_aliases=state["chrom_aliases"],
            warn_padding=state["warn_padding"],
            backend=state["backend"],
        )
        if state["closed"]:
            self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._sizes)} sequences"
        return f"Genome({str(self.path)!r}, {state})"
