"""``cnn export model.h5 model.onnx [--opset N]``: write a saved model as ONNX."""

from __future__ import annotations

import importlib

from cnn.cli.modelfile import read_model

DEFAULT_OPSET = 17  # cnn.onnx.export's default, repeated so that --help needs no onnx


def load_onnx_package():
    """``cnn.onnx``, imported only by this command: onnx is an optional dependency."""
    try:
        return importlib.import_module("cnn.onnx")
    except ImportError as exc:
        raise ValueError(f"cnn export needs the onnx package ({exc}); install the extra: "
                         "pip install -e \".[onnx]\"") from None


def run(args) -> int:
    onnx_package = load_onnx_package()
    model = read_model(args.model)
    proto = onnx_package.export(model, args.output, opset=args.opset)
    graph = proto.graph
    print(f"wrote {args.output} (ONNX opset {args.opset}, {len(graph.node)} nodes): "
          f"{describe(graph.input[0])} -> {describe(graph.output[0])}")
    return 0


def describe(value_info) -> str:
    """``input (batch, 1, 28, 28)``."""
    dims = [d.dim_param or str(d.dim_value) for d in value_info.type.tensor_type.shape.dim]
    return f"{value_info.name} ({', '.join(dims)})"
