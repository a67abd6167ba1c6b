"""A small Transformer encoder on a synthetic sequence task: count each token's occurrences.

Each input is a sequence of ``--length`` tokens drawn from ``--vocab`` symbols; the target at
every position is how many times that position's token occurs in the whole sequence (the
"histogram" task: a token must look at all the others, which is what attention does). The
model (Keras's text-classification-with-Transformer block, per position)::

    Embedding(tokens) + PositionEmbedding  ->  [MultiHeadAttention -> Add -> LayerNorm
    -> Dense(relu) -> Dense -> Add -> LayerNorm] x blocks  ->  Dense softmax per position

Synthetic data, seeded; the held-out sequences are new draws. The metric is the share of
positions whose count is right on the held-out sequences (and of sequences all right).

    python examples/transformer_encoder.py [--length 10] [--vocab 6] [--epochs 15]
"""

import argparse
import time

import numpy as np

import cnn
from cnn.layers import (Add, Dense, Embedding, Input, LayerNormalization, MultiHeadAttention,
                        PositionEmbedding)
from cnn.models import Model
from cnn.optimizers import Adam


def make_data(count, length, vocab, rng):
    """Tokens (count, length) in 1..vocab, and the one-hot counts (count, length, length+1)."""
    tokens = rng.integers(1, vocab + 1, size=(count, length))
    counts = (tokens[:, :, None] == tokens[:, None, :]).sum(axis=-1)
    return tokens.astype(np.float32), np.eye(length + 1, dtype=np.float32)[counts]


def encoder_block(x, dim, heads, hidden):
    attended = MultiHeadAttention(num_heads=heads, key_dim=dim // heads)(x, x)
    x = LayerNormalization(epsilon=1e-6)(Add()([x, attended]))
    feed = Dense(dim)(Dense(hidden, activation="relu")(x))
    return LayerNormalization(epsilon=1e-6)(Add()([x, feed]))


def build(length, vocab, dim, heads, hidden, blocks, learning_rate):
    tokens = Input((length,))
    x = Embedding(vocab + 1, dim)(tokens)
    x = Add()([x, PositionEmbedding(length)(x)])
    for _ in range(blocks):
        x = encoder_block(x, dim, heads, hidden)
    counts = Dense(length + 1, activation="softmax")(x)
    model = Model(inputs=tokens, outputs=counts, name="transformer_encoder")
    model.compile(optimizer=Adam(learning_rate), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=10)
    parser.add_argument("--vocab", type=int, default=6)
    parser.add_argument("--train", type=int, default=10000)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.003)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads (small GEMMs: one thread is fastest on a busy machine)")
    args = parser.parse_args()
    cnn.set_num_threads(args.threads)
    cnn.set_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    x_train, y_train = make_data(args.train, args.length, args.vocab, rng)
    x_test, y_test = make_data(args.test, args.length, args.vocab, rng)
    model = build(args.length, args.vocab, args.dim, args.heads, args.hidden, args.blocks,
                  args.lr)
    start = time.time()
    for epoch in range(1, args.epochs + 1):
        model.fit(x_train, y_train, batch_size=args.batch_size, epochs=1, verbose=0)
        right = model.predict(x_test, batch_size=500).argmax(-1) == y_test.argmax(-1)
        print(f"epoch {epoch}: held-out positions right {right.mean():.2%}, sequences all "
              f"right {right.all(axis=1).mean():.2%} ({time.time() - start:.0f} s)", flush=True)
    print(f"held-out accuracy: {right.mean():.2%} of positions, {right.all(axis=1).mean():.2%} "
          f"of {args.test} sequences, {args.epochs} epochs, {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
