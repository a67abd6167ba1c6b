"""Training, evaluating and predicting on batches whose lengths differ (issue #15): the data
adapters accept a None axis, name the batch of a real mismatch, and predict refuses to join
outputs of different lengths with an error that says what to do."""

from __future__ import annotations

import numpy as np
import pytest

import cnn
from cnn.layers import LSTM, Bidirectional, Conv1D, Dense, Embedding, GlobalMaxPooling1D, Input
from cnn.models import Model
from cnn.utils import pad_sequences

VOCAB, CLASSES = 12, 2


def texts(n, seed=0):
    """Token lists of 2 to 9 ids in [2, VOCAB); the class says whether id 2 occurs."""
    rng = np.random.default_rng(seed)
    sequences = [list(rng.integers(2, VOCAB, rng.integers(2, 10))) for _ in range(n)]
    labels = np.array([int(2 in s) for s in sequences])
    return sequences, labels


class Bucketed:
    """A Keras-style Sequence: batch i pads its own sequences to its longest one."""

    def __init__(self, sequences, labels, batch_size):
        order = np.argsort([len(s) for s in sequences], kind="stable")
        self.batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        self.sequences, self.labels = sequences, labels

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, index):
        rows = self.batches[index]
        x = pad_sequences([self.sequences[i] for i in rows], padding="post")
        return x, np.eye(CLASSES)[self.labels[rows]]


def classifier(seed=0):
    cnn.set_seed(seed)
    ids = Input((None,))
    h = Bidirectional(LSTM(6))(Embedding(VOCAB, 8, mask_zero=True)(ids))
    model = Model(ids, Dense(CLASSES, activation="softmax")(h))
    model.compile(optimizer=cnn.optimizers.Adam(0.02), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def test_fit_evaluate_predict_on_a_bucketed_sequence():
    sequences, labels = texts(96)
    data = Bucketed(sequences, labels, 16)
    assert len({data[i][0].shape[1] for i in range(len(data))}) > 2  # lengths differ
    model = classifier()
    before = model.evaluate(data, return_dict=True)
    history = model.fit(data, epochs=8, shuffle=True, seed=0, verbose=0)
    after = model.evaluate(data, return_dict=True)
    assert after["loss"] < 0.7 * before["loss"]
    assert after["accuracy"] > before["accuracy"] and len(history.history["loss"]) == 8
    predicted = model.predict(data)
    assert predicted.shape == (96, CLASSES)
    # every batch's rows, padded to their own length, give what one sample alone gives
    first = data.batches[0][0]
    alone = model.predict(np.array([sequences[first]]))
    np.testing.assert_allclose(predicted[0], alone[0], rtol=1e-5, atol=1e-6)


def test_predict_on_a_generator_of_different_lengths_with_steps():
    model = classifier()
    batches = [np.ones((2, length), dtype=np.int64) for length in (3, 7, 5)]
    out = model.predict(iter(batches), steps=2)
    assert out.shape == (4, CLASSES)
    np.testing.assert_allclose(out[:2], model.predict(batches[0]), rtol=1e-6)
    np.testing.assert_allclose(out[2:], model.predict(batches[1]), rtol=1e-6)


def test_predict_refuses_to_join_sequence_outputs_of_different_lengths():
    cnn.set_seed(0)
    x = Input((None, 3))
    model = Model(x, LSTM(2, return_sequences=True, name="lstm")(x))
    batches = [np.ones((2, length, 3)) for length in (4, 4, 6)]
    with pytest.raises(ValueError, match=r"output 'lstm' of batch 1 has shape \(2, 4, 2\) but "
                                         r"batch 3 \(2, 6, 2\).*predict_on_batch"):
        model.predict(iter(batches))
    assert model.predict(np.ones((3, 6, 3))).shape == (3, 6, 2)  # one length: one array


def test_a_wrong_feature_count_names_the_batch():
    cnn.set_seed(0)
    x = Input((None, 3))
    model = Model(x, Dense(1)(GlobalMaxPooling1D()(Conv1D(2, 2)(x))))
    model.compile(optimizer="sgd", loss="mse")
    good = [(np.ones((2, length, 3)), np.ones((2, 1))) for length in (4, 9)]
    model.fit(iter(good), epochs=1, steps_per_epoch=2, verbose=0)
    bad = [*good, (np.ones((2, 5, 4)), np.ones((2, 1)))]
    with pytest.raises(ValueError, match=r"batch 3 from the generator: x has shape "
                                         r"\(2, 5, 4\), but the model expects \(N, None, 3\)"):
        model.fit(iter(bad), epochs=1, steps_per_epoch=3, verbose=0)


def test_sequence_targets_of_a_variable_length_are_checked_per_batch():
    cnn.set_seed(0)
    x = Input((None, 3))
    model = Model(x, Dense(2, activation="softmax")(LSTM(4, return_sequences=True)(x)))
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    batches = [(np.ones((2, length, 3)), np.zeros((2, length), dtype=np.int64))
               for length in (3, 6)]
    history = model.fit(iter(batches), epochs=1, steps_per_epoch=2, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    with pytest.raises(ValueError, match="batch 1 from the generator: y"):
        model.fit(iter([(np.ones((2, 3, 3)), np.zeros((2, 3, 5)))]), epochs=1, verbose=0)


def test_workers_refuse_a_variable_length_model():
    model = classifier()
    x = pad_sequences(texts(8)[0], padding="post")
    with pytest.raises(ValueError, match="workers=2.*variable-length"):
        model.fit(x, np.eye(CLASSES)[texts(8)[1]], epochs=1, workers=2, verbose=0)


def test_batch_parts_grow_with_the_batch_length():
    cnn.set_seed(0)
    x = Input((None, 64))
    model = Model(x, Dense(64)(x))
    short = [np.zeros((512, 4, 64), dtype=np.float32)]
    long = [np.zeros((512, 400, 64), dtype=np.float32)]
    assert len(model.parts(512, short)) == 1
    assert len(model.parts(512, long)) > 1


def test_targets_of_another_length_than_the_output_are_refused_clearly():
    cnn.set_seed(0)
    x = Input((None, 3))
    model = Model(x, Dense(2, activation="softmax", name="tags")(Conv1D(4, 2, strides=2)(x)))
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    wrong = [(np.ones((2, 6, 3)), np.eye(2)[np.zeros((2, 6), dtype=int)])]  # output: 3 steps
    for run in (lambda: model.fit(iter(wrong), epochs=1, verbose=0),
                lambda: model.evaluate(iter(wrong))):
        with pytest.raises(ValueError, match=r"output 'tags' is \(2, 3, 2\) for this batch but "
                                             r"its targets are \(2, 6, 2\)"):
            run()
    right = [(np.ones((2, 6, 3)), np.eye(2)[np.zeros((2, 3), dtype=int)])]
    assert np.isfinite(model.evaluate(iter(right), return_dict=True)["loss"])
