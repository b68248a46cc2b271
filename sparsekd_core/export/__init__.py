"""Export to ONNX: the dense part of any model, or a pillar model in Autoware lidar_centerpoint's layout."""
from .exporter import FORMATS, ExportError, ExportReport, export

__all__ = ["FORMATS", "ExportError", "ExportReport", "export"]
