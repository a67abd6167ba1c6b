"""Sequence to sequence: learn to add, Keras's "addition RNN" example.

Questions like ``"535+61 "`` (two numbers of 1 to 3 digits, padded to 7 characters, read
reversed, which shortens the paths from the digits to the answer) and answers like ``"596 "``
(4 characters), one-hot over the 12 characters ``"0123456789+ "``. The model::

    LSTM encoder (N, 7, 12) -> (N, H)  ->  RepeatVector(4) -> (N, 4, H)
    -> LSTM decoder, return_sequences -> (N, 4, H) -> Dense softmax per step -> (N, 4, 12)

Synthetic data, seeded; 10% of the questions are held out (no question is in both sets).
The metric is exact answers: all 4 characters right. Adam with a cosine decay of the
learning rate over ``--epochs``; training stops early once the held-out exact-answer rate
reaches ``--target``.

    python examples/addition_rnn.py [--samples 50000] [--epochs 24] [--units 128]
"""

import argparse
import time

import numpy as np

import cnn
from cnn.layers import LSTM, Dense, Input, RepeatVector
from cnn.models import Model
from cnn.optimizers import Adam
from cnn.schedules import CosineDecay

CHARS = "0123456789+ "
DIGITS = 3
QUESTION_LEN = 2 * DIGITS + 1
ANSWER_LEN = DIGITS + 1


def one_hot(texts, length):
    """Strings of ``length`` characters -> (N, length, 12) one-hot floats."""
    index = {c: i for i, c in enumerate(CHARS)}
    ids = np.array([[index[c] for c in text] for text in texts])
    return np.eye(len(CHARS), dtype=np.float32)[ids.reshape(-1)].reshape(len(texts), length, -1)


def decode(probabilities):
    return ["".join(CHARS[i] for i in row) for row in probabilities.argmax(axis=-1)]


def make_questions(count, rng):
    """``count`` different (question, answer) pairs, e.g. ("12+345 ", "357 ")."""
    seen, questions, answers = set(), [], []
    while len(questions) < count:
        a, b = (int("".join(rng.choice(list("0123456789"), rng.integers(1, DIGITS + 1))))
                for _ in range(2))
        key = tuple(sorted((a, b)))
        if key in seen:
            continue
        seen.add(key)
        questions.append(f"{a}+{b}".ljust(QUESTION_LEN))
        answers.append(str(a + b).ljust(ANSWER_LEN))
    return questions, answers


def build(units, learning_rate, decay_steps):
    model = Model(Input((QUESTION_LEN, len(CHARS))), "addition_rnn")
    model.add_layer(LSTM(units))
    model.add_layer(RepeatVector(ANSWER_LEN))
    model.add_layer(LSTM(units, return_sequences=True))
    model.add_layer(Dense(len(CHARS), activation="softmax"))
    model.compile(optimizer=Adam(CosineDecay(learning_rate, decay_steps, alpha=0.05)),
                  loss="categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def exact_answers(model, x, answers):
    predicted = decode(model.predict(x, batch_size=1024))
    return float(np.mean([p == a for p, a in zip(predicted, answers)]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50000)
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.003)
    parser.add_argument("--target", type=float, default=0.995)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads (small GEMMs: one thread is fastest on a busy machine)")
    args = parser.parse_args()
    cnn.set_num_threads(args.threads)
    cnn.set_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    questions, answers = make_questions(args.samples, rng)
    x = one_hot([q[::-1] for q in questions], QUESTION_LEN)
    y = one_hot(answers, ANSWER_LEN)
    split = len(questions) * 9 // 10
    steps_per_epoch = -(-split // args.batch_size)
    model = build(args.units, args.lr, args.epochs * steps_per_epoch)
    start = time.time()
    accuracy = 0.0
    for epoch in range(1, args.epochs + 1):
        model.fit(x[:split], y[:split], batch_size=args.batch_size, epochs=1, verbose=0)
        accuracy = exact_answers(model, x[split:], answers[split:])
        print(f"epoch {epoch}: held-out exact answers {accuracy:.2%} "
              f"({time.time() - start:.0f} s)", flush=True)
        if accuracy >= args.target:
            break
    for q, a, p in list(zip(questions[split:], answers[split:],
                            decode(model.predict(x[split:split + 5]))))[:5]:
        print(f"  {q.strip()} = {p.strip()} ({'ok' if p == a else 'wrong, ' + a.strip()})")
    print(f"held-out exact answers: {accuracy:.2%} of {len(questions) - split} 3-digit sums, "
          f"{epoch} epochs, {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
