"""A text classifier on sequences of any length, fed in buckets (variable-length Input).

Synthetic "reviews": 4 to ``--max-length`` random word ids; a review is positive when the
phrase "not bad" (id NOT followed by id BAD) occurs in it, negative when it does not (half of
each, the phrase put in or taken out at random places). The word order matters, so a bag of
words cannot solve it; the model::

    Input((None,)) ids -> Embedding(mask_zero=True) (N, T, E) -> Bidirectional(LSTM(U))
    -> (N, 2U) -> Dense softmax (N, 2)

The time axis is None: the model takes each batch at its own length. ``Bucketed`` (a
Keras-style Sequence) sorts the reviews by length, cuts them into batches of similar
lengths and pads each batch only to its own longest review (``cnn.utils.pad_sequences``,
id 0 = padding, masked by the Embedding), so that little of the work goes to padding; it
prints the padded share next to that of padding every review to the longest one.

    python examples/bucketed_text_classifier.py [--samples 1000] [--epochs 4] [--units 16]
"""

import argparse
import time

import numpy as np

import cnn
from cnn.layers import LSTM, Bidirectional, Dense, Embedding, Input
from cnn.models import Model
from cnn.optimizers import Adam
from cnn.utils import pad_sequences

VOCAB = 50  # ids 1..49 are words, 0 is padding
NOT, BAD = 1, 2


def make_reviews(count, max_length, rng):
    """``count`` reviews (lists of ids) and their labels (1: "not bad" occurs)."""
    reviews, labels = [], []
    for index in range(count):
        length = int(rng.integers(4, max_length + 1))
        words = list(rng.integers(1, VOCAB, length))
        for i in range(length - 1):  # take every "not bad" out ...
            if words[i] == NOT and words[i + 1] == BAD:
                words[i + 1] = BAD + 1
        positive = index % 2
        if positive:  # ... and put one in the positive reviews
            at = int(rng.integers(0, length - 1))
            words[at:at + 2] = [NOT, BAD]
        reviews.append(words)
        labels.append(positive)
    return reviews, np.array(labels)


class Bucketed:
    """Batches of reviews of similar lengths, each padded to its own longest review.

    ``__getitem__(i)`` gives ``(ids (n, T_i), one-hot labels (n, 2))``; T_i differs from
    batch to batch. The batches are fixed; ``fit(shuffle=True)`` visits them in a new order
    every epoch.
    """

    def __init__(self, reviews, labels, batch_size):
        order = np.argsort([len(r) for r in reviews], kind="stable")
        self.batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        self.reviews, self.labels = reviews, labels

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, index):
        rows = self.batches[index]
        ids = pad_sequences([self.reviews[i] for i in rows], padding="post")
        return ids, np.eye(2, dtype=np.float32)[self.labels[rows]]

    def padded_share(self):
        """The share of padding in the batches, and when padding all to the longest."""
        steps = sum(len(r) for r in self.reviews)
        bucketed = sum(len(rows) * max(len(self.reviews[i]) for i in rows)
                       for rows in self.batches)
        longest = len(self.reviews) * max(len(r) for r in self.reviews)
        return 1 - steps / bucketed, 1 - steps / longest


def build_model(embedding, units):
    ids = Input((None,))
    tokens = Embedding(VOCAB, embedding, mask_zero=True)(ids)
    features = Bidirectional(LSTM(units))(tokens)
    model = Model(ids, Dense(2, activation="softmax")(features), name="bucketed_text")
    model.compile(optimizer=Adam(0.01), loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--max-length", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--units", type=int, default=16)
    parser.add_argument("--embedding", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    cnn.set_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    reviews, labels = make_reviews(args.samples, args.max_length, rng)
    split = int(0.8 * args.samples)
    train = Bucketed(reviews[:split], labels[:split], args.batch_size)
    test = Bucketed(reviews[split:], labels[split:], args.batch_size)
    bucketed, longest = train.padded_share()
    lengths = sorted({train[i][0].shape[1] for i in range(len(train))})
    print(f"{len(train)} training batches of lengths {lengths[0]} to {lengths[-1]}; padding: "
          f"{bucketed:.1%} of the steps (padding every review to the longest: {longest:.1%})")

    model = build_model(args.embedding, args.units)
    model.summary()
    start = time.perf_counter()
    model.fit(train, epochs=args.epochs, shuffle=True, seed=args.seed, verbose=1)
    seconds = time.perf_counter() - start
    result = model.evaluate(test, return_dict=True)
    print(f"trained {args.epochs} epochs in {seconds:.1f} s")
    print(f"held-out accuracy: {result['accuracy']:.3f} on {len(reviews) - split} reviews")


if __name__ == "__main__":
    main()
