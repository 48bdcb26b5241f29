"""Entry point of the steerkit-datasets distribution: registers its four tasks.

Importing this module imports neither `datasets` nor scikit-learn (they load inside `load`).
"""

from __future__ import annotations

import steerkit
from steerkit import Register
from steerkit_datasets.hub import SST2, CivilComments, TruthfulQA
from steerkit_datasets.offline import SentimentOffline


@steerkit.hookimpl
def register_datasets(register: Register) -> None:
    register(SentimentOffline)
    register(SST2)
    register(CivilComments)
    register(TruthfulQA)
