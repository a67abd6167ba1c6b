"""Layers, importable as in the seed: ``from cnn.layers import *``."""

from cnn.layers.activation_layers import ELU, LeakyReLU, PReLU, ReLU, Softmax
from cnn.layers.attention import MultiHeadAttention
from cnn.layers.augmentation import RandomFlip, RandomRotation, RandomTranslation, RandomZoom
from cnn.layers.augmentation_color import RandomBrightness, RandomContrast
from cnn.layers.base import deserialize, Layer, layer_class, serialize
from cnn.layers.conv import Conv1D, Conv2D
from cnn.layers.conv_transpose import Conv2DTranspose
from cnn.layers.crop import RandomCrop
from cnn.layers.core import Activation, Dense, Dropout, Flatten, Input, Output
from cnn.layers.depthwise import DepthwiseConv2D, SeparableConv2D
from cnn.layers.embedding import Embedding, PositionEmbedding
from cnn.layers.merge import Add, Average, Concatenate, Maximum, Multiply, Subtract
from cnn.layers.normalization import BatchNormalization, LayerNormalization
from cnn.layers.pooling import (AveragePooling1D, AveragePooling2D, GlobalAveragePooling1D,
                                GlobalMaxPooling1D, GlobalMaxPooling2D, MaxPooling1D,
                                MaxPooling2D)
from cnn.layers.preprocessing import Normalization, Rescaling
from cnn.layers.recurrent import Recurrent
from cnn.layers.reshaping import (Cropping2D, GlobalAveragePooling2D, Reshape, UpSampling2D,
                                  ZeroPadding2D)
from cnn.layers.rnn import GRU, LSTM, SimpleRNN
from cnn.layers.sequence import Masking, RepeatVector
from cnn.layers.wrappers import Bidirectional, TimeDistributed

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
    "ReLU",
    "LeakyReLU",
    "ELU",
    "Softmax",
    "PReLU",
    "Rescaling",
    "Normalization",
    "Embedding",
    "Masking",
    "RepeatVector",
    "LayerNormalization",
    "Bidirectional",
    "MultiHeadAttention",
    "PositionEmbedding",
    "Conv1D",
    "MaxPooling1D",
    "AveragePooling1D",
    "GlobalMaxPooling1D",
    "GlobalAveragePooling1D",
    "GlobalMaxPooling2D",
    "Cropping2D",
    "UpSampling2D",
    "DepthwiseConv2D",
    "SeparableConv2D",
    "Conv2DTranspose",
    "RandomFlip",
    "RandomTranslation",
    "RandomRotation",
    "RandomZoom",
    "RandomContrast",
    "RandomBrightness",
    "RandomCrop",
]
