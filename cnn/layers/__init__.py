"""Layers, importable as in the seed: ``from cnn.layers import *``."""

from cnn.layers.base import Layer, deserialize, layer_class, serialize
from cnn.layers.conv import Conv2D
from cnn.layers.core import Activation, Dense, Dropout, Flatten, Input, Output
from cnn.layers.merge import Add, Average, Concatenate, Maximum, Multiply, Subtract
from cnn.layers.normalization import BatchNormalization
from cnn.layers.pooling import AveragePooling2D, MaxPooling2D
from cnn.layers.recurrent import Recurrent
from cnn.layers.reshaping import GlobalAveragePooling2D, Reshape, ZeroPadding2D
from cnn.layers.rnn import GRU, LSTM, SimpleRNN
from cnn.layers.wrappers import TimeDistributed

__all__ = [
    "Input",
    "Conv2D",
    "MaxPooling2D",
    "AveragePooling2D",
    "Flatten",
    "Dense",
    "Output",
    "Recurrent",
    "SimpleRNN",
    "LSTM",
    "GRU",
    "TimeDistributed",
    "Dropout",
    "Activation",
    "BatchNormalization",
    "GlobalAveragePooling2D",
    "ZeroPadding2D",
    "Reshape",
    "Add",
    "Subtract",
    "Multiply",
    "Average",
    "Maximum",
    "Concatenate",
    "Layer",
]
