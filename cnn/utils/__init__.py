from cnn.utils.categorical import to_categorical  # noqa: F401
