"""ONNX export and import.

    import cnn.onnx
    cnn.onnx.export(model, "model.onnx", opset=17)   # any cnn model -> ONNX
    model = cnn.onnx.load("model.onnx")              # ONNX (ours or torch.onnx's) -> cnn

Needs the ``onnx`` package (``pip install -e ".[onnx]"``, which brings onnxruntime too).
See docs/ONNX.md for what each layer becomes and which ops import.
"""

from cnn.onnx.errors import OnnxExportError, OnnxImportError
from cnn.onnx.export import export, to_onnx
from cnn.onnx.importer import load, model_from_proto

__all__ = ["export", "to_onnx", "load", "model_from_proto", "OnnxExportError", "OnnxImportError"]
