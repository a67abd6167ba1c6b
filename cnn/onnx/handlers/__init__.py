"""The handlers of the ONNX ops the importer recognizes; importing this package registers
them (see ``cnn.onnx.context``)."""

from cnn.onnx.handlers import features, images, layers, merge, plumbing, recurrent  # noqa: F401
