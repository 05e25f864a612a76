"""The package's main job end to end, offline: ``enformer demo``.

The demo needs nothing but the package. It

1. builds a **synthetic construct** of the model's input length: a seeded random background
   (41% GC, like the human genome) carrying two genes with CpG-island-like promoters (one on
   each strand), an enhancer, and two CTCF sites. The elements are made of textbook
   transcription-factor consensus sites written for this package (TATA box, initiator, CCAAT
   box, GC box, NRF1, ETS, CREB, YY1, AP-1, GATA, C/EBP, CTCF); see :data:`MOTIFS`;
2. writes it as an indexed FASTA, a GTF of its genes, a BED of its elements and a VCF of
   a few variants that break motifs (and one control far from any element);
3. predicts tracks over the construct with the bundled ``mini`` model (or any weights) and
   writes them as BigWig files;
4. scores the variants (SAD, logSED) into a table, through the same code as
   ``enformer score``;
5. draws the predicted tracks and the strongest variant's effect (PNG), titled with the
   model's description;
6. writes ``summary.json`` and prints where everything is and what to run next with the
   official weights.

With ``fasta`` and ``region`` (``enformer demo --fasta hg38.fa --region chr:start-end``) steps
3-6 run on a region of the user's genome instead of the construct, with the user's variants
(``vcf``) and genes (``gtf``) when given.

With the mini model on 2 CPU cores the whole demo takes about 10-20 seconds. The mini model
is a demonstration model (see :func:`enformer.weights.model_card`); its predictions on a
synthetic construct show the package working, not biology.

Modules: :mod:`.construct` (the synthetic construct, its files and example variants; tests
reuse it), :mod:`.inputs` (the construct or a genome region as the demo's input),
:mod:`.run` (:func:`run_demo`: each window predicted once) and :mod:`.report` (scores
files, pictures, ``summary.json``).
"""

from . import construct
from .construct import *  # noqa: F403 - the names of construct.__all__
from .inputs import nearest_real_base
from .report import next_steps
from .run import MINI_DEMO_TRACKS, demo_tracks, run_demo

__all__ = [
    *construct.__all__,
    "MINI_DEMO_TRACKS",
    "demo_tracks",
    "nearest_real_base",
    "next_steps",
    "run_demo",
]
