"""Offline training package: datasets, augmentation, training, export, evaluation, registry.

Importing it switches off the update checks of the libraries it wraps, before any of them loads:
albumentations asks pypi.org for a newer version at import unless told not to, and a training run
must never touch the network.
"""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")
