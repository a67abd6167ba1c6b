"""Tests for the command line (cnn.cli): train, evaluate, predict, summary and user errors.

Most tests call ``main(argv)`` in-process on a few hundred images; two run ``python -m cnn``
in a subprocess to check the exit status and the stderr a shell sees.
"""

import contextlib
import csv
import io
import json
import os
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest
from PIL import Image

from cnn.cli import build_parser, main
from cnn.datasets import mnist_sample
from cnn.datasets.idx import write_idx
from cnn.datasets.matfile import save_mat
from cnn.models import load_model
from helpers import package_env

OUTPUTS = ("model.h5", "history.json", "history.csv", "accuracy.png", "loss.png", "confusion.png",
           "misclassified.png")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A seed network trained for 2 epochs on 120 sample digits: (run directory, stdout)."""
    out = tmp_path_factory.mktemp("run") / "seed"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = main(["train", "--limit", "120", "--epochs", "2", "--verbose", "2", "--out", str(out)])
    assert status == 0
    return out, stdout.getvalue()


def run_cli(capsys, *argv):
    """``main(argv)``'s exit status (also when argparse exits), stdout and stderr."""
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exit:
        status = exit.code
    out, err = capsys.readouterr()
    return status, out, err


def assert_user_error(status, err, *fragments):
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnn"), err
    assert "error: " in lines[0] and "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# ---------------------------------------------------------------- train


def test_train_writes_model_history_and_plots(trained):
    out, stdout = trained
    for name in OUTPUTS:
        assert (out / name).is_file(), name
        assert f": {out / name}" in stdout  # every file is announced
    for name in OUTPUTS:
        if name.endswith(".png"):
            assert matplotlib.image.imread(out / name).shape[0] > 100
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []

    history = json.loads((out / "history.json").read_text())
    assert history["epoch"] == [1, 2]
    assert set(history) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"}
    rows = list(csv.reader((out / "history.csv").open()))
    assert rows[0] == list(history) and len(rows) == 3
    assert float(rows[2][1]) == pytest.approx(history["loss"][1])

    model = load_model(out / "model.h5")
    assert model.epoch == 2 and model.input.input_shape == (1, 28, 28)
    assert model.class_names == list("0123456789")
    assert "108 images" in stdout
    assert "validating on 12 held-out training images (10%) after each epoch" in stdout
    assert "Epoch 2/2 - " in stdout and "test images: accuracy 0." in stdout


def test_train_is_reproducible_with_a_seed(tmp_path, capsys):
    histories = []
    for run in ("first", "second"):
        status, _, _ = run_cli(capsys, "train", "--model", "mlp", "--limit", 100, "--epochs", 2,
                               "--verbose", 0, "--out", tmp_path / run)
        assert status == 0
        histories.append(json.loads((tmp_path / run / "history.json").read_text()))
    assert histories[0] == histories[1]


def test_train_continues_a_saved_model_and_its_history(tmp_path, trained, capsys):
    out, _ = trained
    run = tmp_path / "continued"
    run.mkdir()
    (run / "seed.h5").write_bytes((out / "model.h5").read_bytes())
    (run / "history.json").write_bytes((out / "history.json").read_bytes())
    status, stdout, _ = run_cli(capsys, "train", "--model", run / "seed.h5", "--limit", 120, "--epochs", 1,
                                "--verbose", 2)
    assert status == 0
    assert "from epoch 3" in stdout and "Epoch 3/3 - " in stdout
    assert load_model(run / "seed.h5").epoch == 3  # updated in place
    assert not (run / "model.h5").exists() and (run / "accuracy.png").is_file()
    history = json.loads((run / "history.json").read_text())
    earlier = json.loads((out / "history.json").read_text())
    assert history["epoch"] == [1, 2, 3] and history["loss"][:2] == earlier["loss"]


def test_continuing_with_a_new_rate_or_a_new_optimizer(tmp_path, capsys):
    common = ["--limit", 64, "--epochs", 1, "--verbose", 0]
    assert run_cli(capsys, "train", "--model", "mlp", "--out", tmp_path, *common)[0] == 0
    status, stdout, _ = run_cli(capsys, "train", "--model", tmp_path / "model.h5", "--lr", 0.0005, *common)
    assert status == 0 and "optimizer adam (learning rate 0.0005)" in stdout and "a new" not in stdout
    status, stdout, _ = run_cli(capsys, "train", "--model", tmp_path / "model.h5", "--optimizer", "sgd", *common)
    assert status == 0 and "continues with a new sgd optimizer" in stdout
    assert load_model(tmp_path / "model.h5").epoch == 3


def test_train_fails_with_one_line_when_a_figure_cannot_be_written(tmp_path, capsys):
    # The figures are drawn in a process of their own; its failure is the command's, named
    # like the command's own errors, and leaves no temporary file behind.
    (tmp_path / "misclassified.png").mkdir()
    status, stdout, err = run_cli(capsys, "train", "--limit", 60, "--epochs", 1, "--verbose", 0,
                                  "--out", tmp_path)
    assert_user_error(status, err, f"{tmp_path / 'misclassified.png'}: Is a directory")
    assert "trained 1 epoch(s)" not in stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(OUTPUTS)


def test_train_prints_in_order_while_its_figures_are_drawn_elsewhere(tmp_path):
    # The figure process prints nothing: a shell sees the command's lines in their order.
    result = subprocess.run([sys.executable, "-m", "cnn", "train", "--limit", "60", "--epochs",
                             "2", "--verbose", "2", "--out", str(tmp_path)], capture_output=True,
                            text=True, env=package_env(), timeout=300, check=True)
    lines = result.stdout.splitlines()
    order = [next(i for i, line in enumerate(lines) if line.startswith(start))
             for start in ("training network 'seed'", "Epoch 1/2 - ", "Epoch 2/2 - ",
                           "trained 2 epoch(s)", "            model:", "    misclassified:")]
    assert order == sorted(order)
    assert lines[-1].endswith("misclassified.png")
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr


def test_train_with_validation_split_and_another_optimizer(tmp_path, capsys):
    status, stdout, _ = run_cli(capsys, "train", "--model", "mlp", "--optimizer", "sgd", "--lr", 0.05,
                                "--validation-split", 0.25, "--limit", 200, "--epochs", 1,
                                "--verbose", 0, "--out", tmp_path)
    assert status == 0
    assert "optimizer sgd (learning rate 0.05)" in stdout
    assert "validating on 50 held-out training images (25%)" in stdout
    assert "val_accuracy" in json.loads((tmp_path / "history.json").read_text())


def test_train_on_a_mat_file(tmp_path, capsys):
    (x_train, y_train), (x_test, y_test) = mnist_sample.load_data()
    save_mat(tmp_path / "MNISTData.mat", x_train[:100], y_train[:100], x_test[:40], y_test[:40])
    status, stdout, _ = run_cli(capsys, "train", "--dataset", tmp_path / "MNISTData.mat", "--model", "mlp",
                                "--epochs", 1, "--verbose", 0, "--out", tmp_path / "run")
    assert status == 0 and "90 images (1, 28, 28), 10 classes" in stdout
    assert (tmp_path / "run" / "confusion.png").is_file()


def test_train_on_a_directory_of_idx_files(tmp_path, capsys):
    (x_train, y_train), (x_test, y_test) = mnist_sample.load_data("uint8")
    data = tmp_path / "idx"
    for stem, array in (("train-images-idx3-ubyte", x_train[:64, 0]), ("train-labels-idx1-ubyte", y_train[:64]),
                        ("t10k-images-idx3-ubyte", x_test[:32, 0]), ("t10k-labels-idx1-ubyte", y_test[:32])):
        write_idx(data / f"{stem}.gz", array, compress=True)
    status, stdout, _ = run_cli(capsys, "train", "--dataset", data, "--model", "lenet", "--epochs", 1,
                                "--batch-size", 64, "--verbose", 0, "--out", tmp_path / "run")
    assert status == 0 and "network 'lenet'" in stdout and "optimizer adam" in stdout


def test_no_arguments_means_train_with_the_readme_defaults(monkeypatch):
    seen = {}
    monkeypatch.setattr("cnn.cli.train.run", lambda args: seen.setdefault("args", args) and 0)
    assert main([]) == 0
    args = seen["args"]
    assert (args.dataset, args.model, args.epochs, args.batch_size, args.seed) == ("mnist-sample", "seed", 5, 32, 0)
    assert args.out is None and args.lr is None and args.optimizer is None


# ---------------------------------------------------------------- evaluate, summary, predict


def test_evaluate_prints_accuracy_loss_and_a_per_class_report(trained, capsys):
    out, _ = trained
    status, stdout, _ = run_cli(capsys, "evaluate", out / "model.h5", "--dataset", "mnist-sample")
    assert status == 0
    lines = stdout.splitlines()
    assert lines[0] == f"{out / 'model.h5'} on the 1000 test images of mnist-sample:"
    assert lines[1].startswith("accuracy 0.") and ", loss " in lines[1]
    assert lines[3].split() == ["precision", "recall", "f1-score", "support"]
    rows = [line.split() for line in lines[4:14]]
    assert [row[0] for row in rows] == list("0123456789")
    assert all(row[4] == "100" for row in rows)
    assert lines[-2].split()[0] == "accuracy" and lines[-1].startswith("macro avg")
    accuracy = float(lines[1].split()[1].rstrip(","))
    assert float(lines[-2].split()[1]) == pytest.approx(accuracy)


def test_summary_prints_layers_and_classes(trained, capsys):
    out, _ = trained
    status, stdout, _ = run_cli(capsys, "summary", out / "model.h5")
    assert status == 0
    assert "Conv2D" in stdout and "Total params: 202750" in stdout
    assert "classes: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9" in stdout and "trained epochs: 2" in stdout


def test_predict_images_and_arrays_agree(trained, tmp_path, capsys):
    out, _ = trained
    _, (x_test, _) = mnist_sample.load_data("uint8")
    digits = x_test[:4, 0]
    np.save(tmp_path / "digits.npy", digits)
    np.save(tmp_path / "one.npy", digits[1].astype(np.float32) / 255)
    # Dark on light, as a digit written on paper: auto-inversion makes it MNIST's light on dark.
    Image.fromarray(255 - digits[1]).save(tmp_path / "paper.png")
    Image.fromarray(digits[1]).convert("RGB").save(tmp_path / "screen.jpg", quality=100)
    status, stdout, _ = run_cli(capsys, "predict", out / "model.h5", tmp_path / "digits.npy",
                                tmp_path / "one.npy", tmp_path / "paper.png", tmp_path / "screen.jpg")
    assert status == 0
    lines = stdout.splitlines()
    assert [line.split(": ")[0] for line in lines] == (
        [f"{tmp_path / 'digits.npy'}[{i}]" for i in range(4)]
        + [str(tmp_path / name) for name in ("one.npy", "paper.png", "screen.jpg")])
    answers = [line.split(": ")[1] for line in lines]
    assert all(answer.endswith("%)") and answer[0].isdigit() for answer in answers)
    assert answers[4] == answers[5] == answers[1]  # the same digit, the same answer
    assert answers[6].split()[0] == answers[1].split()[0]


def test_predict_top_k(trained, tmp_path, capsys):
    out, _ = trained
    np.save(tmp_path / "digit.npy", mnist_sample.load_data()[1][0][0])
    status, stdout, _ = run_cli(capsys, "predict", out / "model.h5", tmp_path / "digit.npy", "--top", 3)
    assert status == 0
    answers = stdout.strip().split(": ", 1)[1].split(", ")
    assert len(answers) == 3
    shares = [float(answer.split("(")[1].rstrip("%)")) for answer in answers]
    assert shares == sorted(shares, reverse=True) and sum(shares) <= 100.05


# ---------------------------------------------------------------- user errors: one line, status 2


@pytest.fixture
def small_images_mat(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "small.mat"
    save_mat(path, rng.random((8, 1, 20, 20)), np.arange(8) % 10, rng.random((4, 1, 20, 20)), np.arange(4))
    return path


@pytest.mark.parametrize("argv, fragments", [
    (["train", "--dataset", "nope"], ["unknown data set 'nope'"]),
    (["train", "--dataset", "absent.mat"], ["absent.mat: No such file"]),
    (["train", "--dataset", "absent/dir"], ["absent/dir: No such file"]),
    (["train", "--dataset", "."], ["not a data set directory", "train-images-idx3-ubyte[.gz]"]),
    (["train", "--model", "resnet"], ["unknown model 'resnet'", "seed, lenet, mlp"]),
    (["train", "--model", "absent.h5"], ["absent.h5: no such model file"]),
    (["train", "--epochs", "0"], ["cnn train: error: argument --epochs", "positive int"]),
    (["train", "--validation-split", "1.5"], ["fraction in [0, 1)"]),
    (["train", "--optimizer", "lbfgs"], ["invalid choice: 'lbfgs'"]),
    (["evaluate"], ["required: model"]),
    (["frobnicate"], ["invalid choice: 'frobnicate'"]),
    (["summary", "absent.h5"], ["absent.h5: no such model file"]),
])
def test_user_errors_print_one_line_and_exit_2(argv, fragments, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status, _, err = run_cli(capsys, *argv)
    assert_user_error(status, err, *fragments)


def test_model_and_data_shape_mismatch(trained, small_images_mat, capsys):
    out, _ = trained
    status, _, err = run_cli(capsys, "evaluate", out / "model.h5", "--dataset", small_images_mat)
    assert_user_error(status, err, "takes inputs (1, 28, 28)", "has images (1, 20, 20)")
    status, _, err = run_cli(capsys, "train", "--model", out / "model.h5", "--dataset", small_images_mat)
    assert_user_error(status, err, "takes inputs (1, 28, 28)")


def test_predict_errors(trained, tmp_path, capsys):
    out, _ = trained
    np.save(tmp_path / "wrong.npy", np.zeros((5, 5)))
    (tmp_path / "notes.txt").write_text("not an image")
    for name, fragment in (("wrong.npy", "shape (5, 5) does not fit"), ("notes.txt", "not an image file"),
                           ("absent.png", "No such file")):
        status, _, err = run_cli(capsys, "predict", out / "model.h5", tmp_path / name)
        assert_user_error(status, err, str(tmp_path / name), fragment)
    status, _, err = run_cli(capsys, "evaluate", tmp_path / "notes.txt")
    assert_user_error(status, err, "notes.txt: not an HDF5 file")


def test_traceback_flag_shows_the_exception(capsys):
    with pytest.raises(ValueError, match="unknown data set"):
        main(["train", "--dataset", "nope", "--traceback"])


def test_a_diverging_run_is_a_user_error(tmp_path, capsys):
    status, _, err = run_cli(capsys, "train", "--lr", "1e30", "--limit", 64, "--epochs", 2, "--verbose", 0,
                             "--out", tmp_path)
    assert_user_error(status, err, "the loss became")
    assert not (tmp_path / "model.h5").exists()


def test_python_dash_m_cnn_in_a_shell(tmp_path):
    env = package_env({**os.environ, "MPLBACKEND": "Agg"})
    result = subprocess.run([sys.executable, "-m", "cnn", "evaluate", "absent.h5"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "cnn: error: absent.h5: no such model file\n"
    result = subprocess.run([sys.executable, "-m", "cnn", "--version"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("cnn ")


def test_parser_lists_every_command():
    text = build_parser().format_help()
    for command in ("train", "evaluate", "predict", "summary"):
        assert command in text


def test_threads_option_limits_blas_threads(trained, capsys, monkeypatch):
    import cnn

    chosen = []
    monkeypatch.setattr(cnn, "set_num_threads", chosen.append)
    status, _, _ = run_cli(capsys, "summary", trained[0] / "model.h5", "--threads", "1")
    assert status == 0 and chosen == [1]
    status, _, err = run_cli(capsys, "summary", trained[0] / "model.h5", "--threads", "0")
    assert_user_error(status, err, "--threads")


# ---------------------------------------------------------------- hostile input (issue 14)


def test_validation_is_on_held_out_training_images_and_the_test_set_is_scored_once(
        tmp_path, capsys, monkeypatch):
    from cnn.models import Model
    seen = {"fit": [], "evaluate": []}
    real_fit, real_evaluate = Model.fit, Model.evaluate

    def fit(self, x, y, **options):
        seen["fit"].append((x, options["validation_data"]))
        return real_fit(self, x, y, **options)

    def evaluate(self, x, y, *args, **options):
        seen["evaluate"].append(x)
        return real_evaluate(self, x, y, *args, **options)

    monkeypatch.setattr(Model, "fit", fit)
    monkeypatch.setattr(Model, "evaluate", evaluate)
    status, _, _ = run_cli(capsys, "train", "--model", "mlp", "--limit", 100, "--epochs", 2,
                           "--verbose", 0, "--out", tmp_path)
    assert status == 0
    (x_train, (x_val, _)), = seen["fit"]
    (x_all, _), (x_test, _) = mnist_sample.load_data()
    assert len(x_train) == 90 and len(x_val) == 10
    trained_on = {image.tobytes() for image in x_train}
    assert not any(image.tobytes() in trained_on for image in x_val)
    assert {image.tobytes() for image in x_all[:100]} == trained_on | {i.tobytes() for i in x_val}
    assert len(seen["evaluate"]) == 1 and np.array_equal(seen["evaluate"][0], x_test[:100])


def test_the_held_out_split_is_seeded_and_must_leave_images_on_both_sides():
    from cnn.cli.train import split_validation
    x, y = np.arange(50)[:, None], np.arange(50)
    (a, _), (va, _) = split_validation(x, y, 0.2, seed=3)
    (b, _), (vb, _) = split_validation(x, y, 0.2, seed=3)
    (_, _), (vc, _) = split_validation(x, y, 0.2, seed=4)
    assert np.array_equal(va, vb) and np.array_equal(a, b) and not np.array_equal(va, vc)
    assert split_validation(x, y, 0.0, seed=3)[1] is None
    with pytest.raises(ValueError, match="must leave at least one"):
        split_validation(x[:3], y[:3], 0.1, seed=0)


def test_out_pointing_at_a_file_is_refused_before_anything_is_trained(tmp_path, capsys):
    (tmp_path / "a_file").write_text("mine")
    for out in (tmp_path / "a_file", tmp_path / "a_file" / "run"):
        status, stdout, err = run_cli(capsys, "train", "--out", out, "--epochs", 1)
        assert_user_error(status, err, str(tmp_path / "a_file"))
        assert "training" not in stdout
    assert (tmp_path / "a_file").read_text() == "mine"


def test_evaluate_picks_the_data_set_recorded_by_train(trained, capsys):
    out, _ = trained
    status, stdout, _ = run_cli(capsys, "evaluate", out / "model.h5")
    assert status == 0 and stdout.startswith(f"{out / 'model.h5'} on the 1000 test images of "
                                             "mnist-sample:")
    status, stdout, _ = run_cli(capsys, "summary", out / "model.h5")
    assert "trained on: mnist-sample" in stdout


def fashion_model(path, record_dataset):
    from cnn import networks
    from cnn.datasets import fashion_mnist
    from cnn.saving.h5_format import save_model
    model = networks.build("mlp", (1, 28, 28), 10)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    model.class_names = list(fashion_mnist.CLASS_NAMES)
    save_model(model, path, metadata={"dataset": "fashion-mnist"} if record_dataset else None)
    return path


def test_evaluate_refuses_to_score_a_model_on_another_data_sets_classes(tmp_path, capsys):
    from cnn.cli.modelfile import trained_dataset
    path = fashion_model(tmp_path / "fashion.h5", record_dataset=False)
    status, _, err = run_cli(capsys, "evaluate", path, "--dataset", "mnist-sample")
    assert_user_error(status, err, "was trained on the classes T-shirt/top",
                      "pass the --dataset it was trained on")
    assert trained_dataset(path, load_model(path)) == "fashion-mnist"  # from its class names
    recorded = fashion_model(tmp_path / "recorded.h5", record_dataset=True)
    assert trained_dataset(recorded, load_model(recorded)) == "fashion-mnist"


def test_evaluate_refuses_to_guess_when_the_file_does_not_say(tmp_path, capsys):
    from cnn import networks
    model = networks.build("mlp", (1, 28, 28), 10)
    model.save(tmp_path / "digits.h5")
    status, _, err = run_cli(capsys, "evaluate", tmp_path / "digits.h5")
    assert_user_error(status, err, f"{tmp_path / 'digits.h5'}: the file does not say which data "
                                   "set", "pass --dataset")


def test_predict_refuses_a_decompression_bomb_and_names_a_truncated_image(trained, tmp_path,
                                                                           capsys):
    out, _ = trained
    Image.new("L", (20000, 20000)).save(tmp_path / "bomb.png")  # 400 megapixels in 400 kB
    Image.new("L", (10000, 10000)).save(tmp_path / "large.png")  # over the limit, under 2x
    png = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    Image.fromarray(noise).save(png, "PNG")  # about 900 bytes: noise does not compress
    (tmp_path / "cut.png").write_bytes(png.getvalue()[:300])
    for name, fragment in (("bomb.png", "Image size (400000000 pixels) exceeds limit"),
                           ("large.png", "Image size (100000000 pixels) exceeds limit"),
                           ("cut.png", "a damaged or truncated image file")):
        status, _, err = run_cli(capsys, "predict", out / "model.h5", tmp_path / name)
        assert_user_error(status, err, f"{tmp_path / name}: ", fragment)


def test_predict_refuses_a_npy_header_declaring_more_than_the_file_holds(trained, tmp_path,
                                                                        capsys):
    out, _ = trained
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (100000, 1, 28, 28)})
    (tmp_path / "huge.npy").write_bytes(header.getvalue() + bytes(64))
    status, _, err = run_cli(capsys, "predict", out / "model.h5", tmp_path / "huge.npy")
    assert_user_error(status, err, "the .npy header declares an array of shape (100000, 1, 28, 28)")


def test_a_closed_pipe_ends_quietly_with_status_0(trained, tmp_path):
    out, _ = trained
    env = package_env({**os.environ, "MPLBACKEND": "Agg"})
    for command in (["evaluate", str(out / "model.h5")], ["summary", str(out / "model.h5")]):
        result = subprocess.run(
            f"{sys.executable} -m cnn {' '.join(command)} | head -c 10; "
            "echo \" status=${PIPESTATUS[0]}\"", shell=True, executable="/bin/bash",
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert result.stdout.endswith(" status=0\n"), (result.stdout, result.stderr)
        assert result.stderr == "", result.stderr
