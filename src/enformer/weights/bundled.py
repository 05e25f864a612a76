"""Models that ship inside the package, so the package does something real offline.

Only one exists: ``"mini"``, a 2.0 M-parameter Enformer trained with this package's own
pipeline on the 45 training windows of Basenji's small hg38 test set (74 CAGE, DNase and RNA
tracks; ``configs/mini.yaml`` is the exact recipe). It powers ``enformer demo`` and quick
experiments on a laptop. It is **not** the published model: its accuracy is far below
Enformer's (see its model card, :func:`model_card`), so use the official weights for
science.

A bundled name is looked up only when no file or folder of that name exists, so a local
checkpoint directory called ``mini`` still wins::

    from enformer import Enformer
    model = Enformer.from_pretrained("mini")   # no download, no network
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

__all__ = ["BUNDLED_MODELS", "bundled_path", "is_bundled", "model_card", "weights_dir"]

# name -> one-line summary (the folder is enformer/pretrained/<name>/).
BUNDLED_MODELS: dict[str, str] = {
    "mini": (
        "2.0 M-parameter demo Enformer, 131,072 bp in, 512 x 128-bp bins, 74 human CAGE/DNase/"
        "RNA tracks; trained on 45 hg38 windows; not for science (use the official weights)"
    ),
}


def is_bundled(name: str | os.PathLike[str]) -> bool:
    """Whether ``name`` names a bundled model and no file or folder of that name exists."""
    if not isinstance(name, str) or name not in BUNDLED_MODELS:
        return False
    return not Path(name).exists()


def bundled_path(name: str) -> Path:
    """Folder of bundled model ``name`` (``config.json``, ``model.safetensors``, track sheet).

    Raises
    ------
    KeyError
        ``name`` is not a bundled model (the message lists those that are).
    FileNotFoundError
        The package was installed without its data files.
    """
    if name not in BUNDLED_MODELS:
        raise KeyError(
            f"{name!r} is not a bundled model; bundled: {', '.join(sorted(BUNDLED_MODELS))}"
        )
    path = Path(str(resources.files("enformer") / "pretrained" / name))
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"the bundled model {name!r} is missing from this installation ({path}); reinstall "
            "the package from a full source tree or wheel (pip install enformer)"
        )
    return path


def model_card(name: str = "mini") -> str:
    """The model card (Markdown) of bundled model ``name``: data, recipe, test accuracy."""
    return (bundled_path(name) / "MODEL_CARD.md").read_text(encoding="utf-8")


def weights_dir(path_or_name: str | os.PathLike[str] | None) -> Path | None:
    """The local folder holding the weights named by ``path_or_name``, if there is one.

    A bundled name gives its package folder; an existing directory gives itself; an existing
    file gives its parent. Anything else (a hub name, a missing path) gives ``None``. Track
    sheets (``targets_{head}.txt``) are looked for in this folder.
    """
    if path_or_name is None:
        return None
    if is_bundled(os.fspath(path_or_name)):
        return bundled_path(os.fspath(path_or_name))
    path = Path(os.fspath(path_or_name)).expanduser()
    if not path.exists():
        return None
    return path if path.is_dir() else path.parent
