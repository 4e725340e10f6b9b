"""Sparse liquid networks: wiring, sparse layers, the CfC cell and the NCP networks."""

from velora.nn.cell import LiquidCell
from velora.nn.ncp import LiquidNCPNetwork, NCPNetwork
from velora.nn.sparse import SparseLinear
from velora.nn.wiring import Wiring, WiringMasks

__all__ = ["Wiring", "WiringMasks", "SparseLinear", "LiquidCell", "LiquidNCPNetwork", "NCPNetwork"]
