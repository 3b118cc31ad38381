"""Oracles: who labels the frames a round selected.

* :class:`SimulatedOracle` reveals the labels the dataset already ships (simulation: the boxes
  ingested with the frames become "labeled").
* :class:`ImportOracle` imports KITTI label files a labeling team returned
  (``<label_dir>/<frame id>.txt``) through :func:`curate.labels_import.import_labels`; a missing
  file stops the loop with a message listing the frames still to label, and the loop resumes
  at the same round once they are there.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol, Sequence, Union

from curate.confine import inside
from curate.errors import InvalidInputError, NotFoundError
from curate.local_workspace import LocalWorkspace

__all__ = ["Oracle", "SimulatedOracle", "ImportOracle", "create_oracle"]

logger = logging.getLogger(__name__)


class Oracle(Protocol):
    """Labels frames of a workspace."""

    name: str

    def label(self, workspace: LocalWorkspace, ids: Sequence[str]) -> int:
        """Make ``ids`` labeled; returns the number of boxes they now carry."""
        ...


def _box_count(workspace: LocalWorkspace, ids: Sequence[str]) -> int:
    boxes = workspace.boxes(list(ids), labeled_only=True)
    if boxes.num_rows == 0:
        return 0
    types = boxes.column("type").to_pylist()
    return sum(1 for t in types if t != "DontCare")


class SimulatedOracle:
    """Reveal the ground truth ingested with the frames (simulation)."""

    name = "simulate"

    def label(self, workspace: LocalWorkspace, ids: Sequence[str]) -> int:
        """Mark ``ids`` labeled; their stored source boxes become training labels."""
        ids = list(ids)
        if ids:
            workspace.label(ids)
        return _box_count(workspace, ids)


class ImportOracle:
    """Import ``<label_dir>/<frame id>.txt`` KITTI label files for the selected frames.

    Parameters
    ----------
    label_dir : str or Path
        Folder the labeling team writes label files to.
    """

    name = "import"

    def __init__(self, label_dir: Union[str, Path]) -> None:
        self.label_dir = Path(label_dir)

    def label(self, workspace: LocalWorkspace, ids: Sequence[str]) -> int:
        """Import the label files of ``ids``; raises :class:`NotFoundError` listing missing ones."""
        from curate.labels_import import import_labels

        ids = list(ids)
        if not ids:
            return 0
        files = [inside(self.label_dir / f"{i.split('/')[-1]}.txt", self.label_dir, "label file")
                 for i in ids]  # symlinks leading out of label_dir are refused
        missing = [i for i, f in zip(ids, files) if not f.is_file()]
        if missing:
            raise NotFoundError(
                f"{len(missing)} of {len(ids)} selected frames have no label file in "
                f"{self.label_dir} (first: {', '.join(missing[:5])}); label them, save "
                "<frame id>.txt there and run the loop again: it resumes at this round"
            )
        import_labels(workspace.store, [str(f) for f in files])
        return _box_count(workspace, ids)


def create_oracle(kind: str, label_dir: Union[str, Path, None] = None) -> Oracle:
    """``"simulate"`` or ``"import"`` (needs ``label_dir``)."""
    if kind == "simulate":
        return SimulatedOracle()
    if kind == "import":
        if label_dir is None:
            raise InvalidInputError("oracle 'import' needs label_dir (the folder of returned label files)")
        return ImportOracle(label_dir)
    raise InvalidInputError(f"unknown oracle {kind!r}; valid oracles: import, simulate")
