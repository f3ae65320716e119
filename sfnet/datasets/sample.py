"""Placeholder: being written."""

__all__ = ["GalaxySample"]


class GalaxySample:  # replaced by the data layer
    def __init__(self, images, catalog):
        self.images = images
        self.catalog = catalog

    def __len__(self):
        return len(self.catalog)
