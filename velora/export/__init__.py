"""Take a trained policy out of Python: ONNX export (the `export` extra)."""

from velora.export.onnx import INPUTS, OUTPUTS, ExportedPolicy, export_onnx

__all__ = ["ExportedPolicy", "export_onnx", "INPUTS", "OUTPUTS"]
