"""The image history buffer (Zhu et al. 2017, §4; Shrivastava et al. 2017, §2.3).

The discriminators are updated with a mix of the newest generated images and older ones, so that
they keep penalising modes the generator produced earlier instead of chasing its latest output.
"""
from __future__ import annotations

import random

import torch


class ImagePool:
    """A buffer of at most ``size`` generated images, with the official semantics.

    ``query(images)`` takes a batch and returns a batch of the same shape. For each image: while the
    buffer is not full, the image is stored and returned; once full, with probability 0.5 a random
    stored image is returned and the new one takes its place, else the new image is returned.
    ``size=0`` disables the pool (the batch comes back unchanged). Images are stored detached.
    Randomness comes from Python's ``random`` module, which the trainer seeds and checkpoints.
    """

    def __init__(self, size: int = 50):
        if size < 0:
            raise ValueError(f"pool size={size}: must be 0 (no pool) or more")
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif random.random() < 0.5:
                i = random.randrange(self.size)
                out.append(self.images[i].to(image.device, copy=True))
                self.images[i] = image
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict:
        return {"size": self.size, "images": [im.cpu() for im in self.images]}

    def load_state_dict(self, state: dict) -> None:
        self.size = state["size"]
        self.images = list(state["images"])

    def __len__(self) -> int:
        return len(self.images)
