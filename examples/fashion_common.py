"""What the Fashion-MNIST examples share: timing the training and writing the results."""

import time
from pathlib import Path

from cnn.datasets import fashion_mnist
from cnn.utils.visualization import confusion_show, history_show


def train_and_report(model, train, test, out, **fit_arguments):
    """Fit on ``train = (x, y)``, print the time and the test accuracy/loss, and write the
    model, the accuracy/loss curves and the confusion matrix into ``out``."""
    (x_train, y_train), (x_test, y_test) = train, test
    out = Path(out)
    epochs = fit_arguments["epochs"]
    start = time.perf_counter()
    history = model.fit(x_train, y_train, verbose=2, **fit_arguments)
    seconds = time.perf_counter() - start
    results = model.evaluate(x_test, y_test, return_dict=True)
    accuracy, loss = results["accuracy"], results["loss"]
    print(f"training time: {seconds:.1f} s ({seconds / epochs:.1f} s/epoch)")
    print(f"test accuracy: {accuracy:.4f}  test loss: {loss:.4f}")

    history_show(history, out / "accuracy.png", out / "loss.png", show=False)
    confusion_show(list(fashion_mnist.CLASS_NAMES), model.predict_classes(x_test), y_test,
                   confusion_file=out / "confusion.png", show=False)
    model.save(out / "model.h5")
    print(f"wrote {out}/model.h5, accuracy.png, loss.png, confusion.png")
    return history
