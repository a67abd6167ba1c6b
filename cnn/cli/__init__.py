"""The command line: ``python -m cnn COMMAND ...``, also installed as ``cnn``.

    cnn train      train a network on a data set; writes the model, history and plots
    cnn evaluate   accuracy, loss and a per-class report of a saved model on a test set
    cnn predict    classify image files or .npy arrays with a saved model
    cnn summary    print a saved model's layers
    cnn export     write a saved model as ONNX (needs the [onnx] extra)

With no arguments, ``cnn`` runs ``cnn train``: the seed's network on the MNIST sample that
ships with the package. A user error (a wrong argument, a missing or malformed file, a model
that does not fit the data) prints one line, ``cnn: error: ...``, and exits with status 2;
``--traceback`` shows the whole traceback instead. Output into a pipe that closes early
(``cnn evaluate model.h5 | head -3``) ends the command quietly, with status 0.
"""

from __future__ import annotations

import argparse
import os
import select
import sys

import cnn
from cnn import distributed, networks, optimizers
from cnn.cli import data, evaluate, export, predict, train
from cnn.cli.figures import FigureError
from cnn.models import NonFiniteLossError

# Errors that print one line (``cnn: error: ...``, status 2) unless --traceback is given.
USER_ERRORS = (ValueError, OSError, NonFiniteLossError, FigureError)


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="cnn", description="Train and use cnn models. "
                                     "With no arguments: train the seed's network on the bundled MNIST sample.")
    parser.add_argument("--version", action="version", version=f"cnn {cnn.__version__}")
    common = OneLineErrorParser(add_help=False)
    common.add_argument("--traceback", action="store_true",
                        help="show the full traceback of an error instead of one line")
    common.add_argument("--threads", type=_positive(int), default=None,
                        help="BLAS threads for the matrix products, shared among the processes "
                             "(default: one per process while cnn computes)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train_parser = commands.add_parser(
        "train", parents=[common], help="train a network; write the model, history and plots",
        description="Train a network and write into --out: model.h5, history.json, history.csv, "
                    "accuracy.png, loss.png, confusion.png, misclassified.png.")
    train_parser.add_argument("--dataset", default="mnist-sample", help=f"{data.HELP} (default: %(default)s)")
    train_parser.add_argument("--model", default="seed",
                              help=f"a network by name ({', '.join(networks.NAMES)}) or a saved .h5 "
                                   "model to continue training (default: %(default)s)")
    train_parser.add_argument("--epochs", type=_positive(int), default=5, help="default: %(default)s")
    train_parser.add_argument("--batch-size", type=_positive(int), default=32, help="default: %(default)s")
    train_parser.add_argument("--lr", type=_positive(float), default=None,
                              help="learning rate (default: 0.1 for seed with sgd, the optimizer's "
                                   "own otherwise, a saved model's own)")
    train_parser.add_argument("--optimizer", choices=optimizers.names(), default=None,
                              help="default: sgd for seed, adam for lenet and mlp; a saved model "
                                   "keeps its own (and its state) unless this is given")
    train_parser.add_argument("--validation-split", type=_fraction, default=0.1,
                              help="fraction of the training images held out (drawn with --seed) "
                                   "to validate on after each epoch; 0: no validation. The test "
                                   "set is scored once, at the end (default: %(default)s)")
    add_workers_option(train_parser)
    train_parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    train_parser.add_argument("--limit", type=_positive(int), default=None,
                              help="use only the first N training and N test images (quick trials)")
    train_parser.add_argument("--out", default=None,
                              help="output directory (default: runs/NETWORK; for a saved model, its "
                                   "directory, and the model file is updated in place)")
    train_parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                              help="0 silent, 1 progress bar, 2 one line per epoch (default: %(default)s)")
    train_parser.set_defaults(run=train.run)

    evaluate_parser = commands.add_parser(
        "evaluate", parents=[common], help="accuracy, loss and per-class report on a test set")
    evaluate_parser.add_argument("model", help="a saved .h5 model")
    evaluate_parser.add_argument("--dataset", default=None,
                                 help=f"{data.HELP} (default: the data set the model was "
                                      "trained on, as its file records)")
    evaluate_parser.add_argument("--batch-size", type=_positive(int), default=256, help="default: %(default)s")
    add_workers_option(evaluate_parser)
    evaluate_parser.set_defaults(run=evaluate.run)

    predict_parser = commands.add_parser(
        "predict", parents=[common], help="classify image files (PNG, JPEG, ...) or .npy arrays",
        description="Classify images with a saved model. Image files are grey-scaled (RGB for "
                    "3-channel models), padded to the model's aspect ratio, resized to its input "
                    "and scaled to [0, 1]; dark-on-light images (border brighter than mid-grey) "
                    "are inverted to MNIST's light-on-dark unless --invert says otherwise. .npy "
                    "arrays of shape (H, W), (C, H, W) or (N, C, H, W) are used as they are "
                    "(uint8 scaled to [0, 1]).")
    predict_parser.add_argument("model", help="a saved .h5 model")
    predict_parser.add_argument("inputs", nargs="+", metavar="INPUT", help="an image file or a .npy array")
    predict_parser.add_argument("--invert", choices=("auto", "yes", "no"), default="auto",
                                help="invert grey images (default: auto, by the border's brightness)")
    predict_parser.add_argument("--crop", action="store_true",
                                help="crop to the strokes and add an MNIST-like margin (photos of digits)")
    predict_parser.add_argument("--top", type=_positive(int), default=1,
                                help="show the K most likely classes (default: %(default)s)")
    add_workers_option(predict_parser)
    predict_parser.set_defaults(run=predict.run)

    summary_parser = commands.add_parser("summary", parents=[common], help="print a saved model's layers")
    summary_parser.add_argument("model", help="a saved .h5 model")
    summary_parser.set_defaults(run=evaluate.summary)

    export_parser = commands.add_parser(
        "export", parents=[common], help="write a saved model as ONNX (needs the [onnx] extra)")
    export_parser.add_argument("model", help="a saved .h5 model")
    export_parser.add_argument("output", help="the .onnx file to write")
    export_parser.add_argument("--opset", type=_positive(int), default=export.DEFAULT_OPSET,
                               help="ONNX opset, 13 or newer (default: %(default)s)")
    export_parser.set_defaults(run=export.run)
    return parser


def add_workers_option(parser) -> None:
    parser.add_argument("--workers", type=_positive(int), default=None,
                        help="processes sharing each batch, one BLAS thread each (default: "
                             "CNN_WORKERS if set, else one per usable core when the batch "
                             "and the data pay for it; 1 opts out)")


def main(argv=None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv or ["train"])
    world = join_mpi_job()
    try:
        if args.threads is not None:
            cnn.set_num_threads(args.threads)
        status = args.run(args)
        sys.stdout.flush()
        return status
    except BrokenPipeError as exc:
        if stdout_closed():  # the reader of our output has gone: nothing left to do
            silence_stdout()
            return 0
        if args.traceback:
            raise
        print(f"cnn: error: {describe_error(exc)}", file=sys.stderr)
        return 2
    except USER_ERRORS as exc:
        if args.traceback:
            raise
        if world.size > 1:  # the other ranks may be waiting for this one: end them all
            print(f"cnn: error on rank {world.rank}: {describe_error(exc)}", file=sys.stderr)
            sys.stderr.flush()
            world.abort(2)
        print(f"cnn: error: {describe_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cnn: interrupted", file=sys.stderr)
        return 130


def join_mpi_job():
    """Under ``mpiexec``, join the job's ranks (``cnn.distributed.init()``) and leave the
    printing to rank 0; otherwise a world of this process alone."""
    if not distributed.launched_by_mpi():
        return distributed.world()
    world = distributed.init()
    if not distributed.is_chief():
        silence_stdout()
    return world


def stdout_closed() -> bool:
    """Whether standard output is a pipe whose reader has gone (``| head`` has exited)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return False


def silence_stdout() -> None:
    """Point standard output at /dev/null, so that the interpreter's last flush of what is
    still buffered does not report the broken pipe again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        pass
    finally:
        os.close(devnull)


def describe_error(exc: BaseException) -> str:
    """One line: ``path: reason`` for file errors from the OS, the message otherwise."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        message = f"{exc.filename}: {exc.strerror}"
    else:
        message = str(exc) or type(exc).__name__
    return " ".join(message.split())


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value

    return parse


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}")
    return value


if __name__ == "__main__":
    sys.exit(main())
