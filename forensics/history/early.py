"""The history replay, started while a seekable input is still being read.

The replay of layer N needs the history, the config and layers 0..N, nothing else
(forensics.history.replay). When the pass runs in worker processes
(forensics.archive.parallel), the documents are read before any layer blob, so the
parent can plan the replay, ask for the layers bottom up, and replay each one as it
arrives while the workers read the layers above it: the replay no longer waits for
the whole input.

What the replay saw is a preview of the model, not the model. `replay_for` keeps a
replay only if the final model holds the very same layer file lists and captured
files (the same entry objects, not equal ones), the same history, the same config working
directory and the same pairing of history entries with layers; anything else, and
the image is replayed afresh from the final model, as it is for a stream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from forensics.history.replay import ImageReplay
from forensics.models import FileEntry, Image
from forensics.read.model import LayerIndex, Resolved, ResolvedImage


class Allowance(Protocol):
    """The layer entries the history may analyze (pipeline._Allowance), taken in the
    order the final model takes them: image by image, layer by layer."""

    def take(self, files: list[FileEntry], name: str) -> list[FileEntry]: ...


def _said(img: Image) -> tuple:
    """What the replay reads of an image besides its layers."""
    hist = [(h.index, h.created, h.created_by, h.author, h.comment, h.empty_layer) for h in img.history]
    return (img.index, img.config.workdir if img.config is not None else None, hist)


def _same(a: dict, b: dict) -> bool:
    return a is b or (not a and not b)  # a missing layer is an empty dict on both sides


def _same_files(a: list[FileEntry], b: list[FileEntry]) -> bool:
    # The model's Layer copies the list it is given (pydantic), not the entries in it.
    return len(a) == len(b) and all(x is y for x, y in zip(a, b))


class EarlyHistory:
    """forensics.read.Early for the history analysis (see the module docstring).

    `image_of` builds an image's model from the preview (no layer files);
    `allowance_for(input_size)` the allowance the final model will apply."""

    def __init__(self, image_of: Callable[[ResolvedImage], Image], allowance_for: Callable[[int], Allowance]) -> None:
        self._image_of = image_of
        self._allowance_for = allowance_for
        self._allowance: Allowance | None = None
        self._plan: list[tuple[int, int, int | None, str]] = []  # (image slot, layer index, seq, entry name)
        self._replays: list[ImageReplay] = []
        self._ready: dict[int, LayerIndex | None] = {}  # seq -> the blob's index, once read
        self._next = 0  # the first plan item not replayed yet
        self._dead = False  # a replay raised part way: none is kept
        self.kept = 0  # images whose early replay was used (for tests and the benchmark)

    def planned(self, res: Resolved, pending: set[int]) -> list[int]:
        self._allowance = self._allowance_for(res.archive.input_size)
        for slot, rimg in enumerate(res.images):
            img = self._image_of(rimg)
            if sum(1 for h in img.history if not h.empty_layer) > len(img.layers):
                # Which entry owns no layer is chosen by looking at every layer's files
                # (mapping._drop_extra): nothing can be replayed before all are read.
                self._dead = True
                return []
            self._replays.append(ImageReplay(img))
            for lr in rimg.layers:
                e = lr.descriptor.entry
                self._plan.append((slot, lr.index, e.seq if e is not None else None, e.name if e is not None else ""))
                if e is not None and e.seq not in pending:
                    self._ready[e.seq] = e.layer  # read already (not a blob a worker reads)
        self._advance()
        order = [seq for _, _, seq, _ in self._plan if seq is not None and seq in pending]
        return list(dict.fromkeys(order))  # a blob two images share: asked for once

    def layer(self, seq: int, index: LayerIndex | None) -> None:
        self._ready[seq] = index
        self._advance()

    def _advance(self) -> None:
        if self._dead or self._allowance is None:
            return
        while self._next < len(self._plan):
            slot, li, seq, name = self._plan[self._next]
            if seq is not None and seq not in self._ready:
                return  # the replay of this layer waits for its blob
            index = self._ready.get(seq) if seq is not None else None
            files = self._allowance.take(index.files if index else [], name) if seq is not None else []
            try:
                self._replays[slot].layer(li, files, index.captured if index else {})
            except BaseException:
                self._dead = True
                raise
            self._next += 1

    def replay_for(self, slot: int, img: Image, captured: list[dict[str, bytes]]) -> ImageReplay | None:
        """The replay of the final model's image `slot`, if it replayed what that image holds."""
        if self._dead or slot >= len(self._replays):
            return None
        r = self._replays[slot]
        if len(r.fed) != len(img.layers) or _said(r.img) != _said(img):
            return None
        for (files, cap), layer, final_cap in zip(r.fed, img.layers, captured):
            if not _same_files(files, layer.files) or not _same(cap, final_cap):
                return None
        if not r.rebind(img):
            return None
        self.kept += 1
        return r
