"""Training and evaluation of the recognition networks.

Modules: :mod:`.datasets` (loaders of the licensed releases), :mod:`.synthetic` (the
synthetic AU-pattern dataset, registered as ``synthetic``), :mod:`.features` (model inputs
via :mod:`mestudio.preprocess`, cached), :mod:`.augment`, :mod:`.losses`, :mod:`.metrics`,
:mod:`.runner` (LOSO/LODO protocols), :mod:`.report`, :mod:`.config` (``TrainConfig``).

Importing this package registers the synthetic dataset; nothing heavy (torch, cv2) is
imported here.
"""

from __future__ import annotations


def _register_synthetic() -> None:
    from mestudio.training.synthetic import register

    register()


_register_synthetic()
