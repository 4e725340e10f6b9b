"""Sparse liquid networks: wiring, sparse layers, the CfC cell, the NCP networks, and
the observation normaliser in front of them."""

from velora.nn.cell import LiquidCell
from velora.nn.ncp import LiquidNCPNetwork, NCPNetwork
from velora.nn.normalize import ObservationNormalizer
from velora.nn.sparse import SparseLinear
from velora.nn.wiring import Wiring, WiringMasks

__all__ = [
    "Wiring",
    "WiringMasks",
    "SparseLinear",
    "LiquidCell",
    "LiquidNCPNetwork",
    "NCPNetwork",
    "ObservationNormalizer",
]
