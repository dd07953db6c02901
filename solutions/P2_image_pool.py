"""Answer to problem set 2 (notebooks/problems/P2_image_pool.ipynb): the image pool.

Instructor's file: keep it out of what you hand out. See book/problem_sets.md.
"""
import random

import torch


class ImagePool:
    """A history of at most ``size`` generated images (§4; Shrivastava et al. 2017)."""

    def __init__(self, size):
        self.size = size
        self.images = []

    def query(self, images):
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:          # filling up: keep it and return it
                self.images.append(image)
                out.append(image)
            elif random.random() < 0.5:               # hand out an old image, keep the new one in its place
                i = random.randrange(self.size)
                out.append(self.images[i])
                self.images[i] = image
            else:
                out.append(image)
        return torch.cat(out)
