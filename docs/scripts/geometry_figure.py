"""Draw docs/assets/geometry.png: what the input covers and which part the output bins cover.

    python docs/scripts/geometry_figure.py
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from enformer import EnformerConfig  # noqa: E402
from enformer.model import BorzoiConfig, output_geometry  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "assets" / "geometry.png"


def draw(ax, geometry, name: str) -> None:
    length, start, span = geometry.input_length, geometry.offset, geometry.output_span
    kb = 1 / 1000
    ax.barh(1, length * kb, color="#d9d9d9", edgecolor="black", height=0.5)
    ax.barh(0, span * kb, left=start * kb, color="#4c72b0", edgecolor="black", height=0.5)
    ax.text(length * kb / 2, 1, f"input: {length:,} bp of DNA", ha="center", va="center")
    ax.text(start * kb + span * kb / 2, 0, f"{geometry.n_bins:,} output bins of "
            f"{geometry.bin_size} bp = {span:,} bp", ha="center", va="center", color="white")
    for x in (start, start + span):
        ax.axvline(x * kb, color="#4c72b0", ls=":", lw=1)
    if start > 0.1 * length:
        ax.annotate(f"crop: {start:,} bp", xy=(start * kb / 2, 0), ha="center", va="center")
        ax.annotate(f"crop: {start:,} bp", xy=((length - start / 2) * kb, 0), ha="center",
                    va="center")
    ax.set_yticks([0, 1], ["output", "input"])
    ax.set_xlim(0, length * kb)
    ax.set_title(f"{name}: {start:,} bp cropped on each side", loc="left", fontsize=11)
    ax.set_xlabel("position in the input window (kb)")


def main() -> None:
    fig, axes = plt.subplots(2, 1, figsize=(9, 4.2))
    draw(axes[0], output_geometry(EnformerConfig.official()), "Enformer (official weights)")
    draw(axes[1], output_geometry(BorzoiConfig.preset("official")), "Borzoi / Flashzoi")
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=110)
    print(OUT)


if __name__ == "__main__":
    main()
