"""Draw every figure of the book (docs/book/images/*.png) from code; deterministic.

    python docs/book/make_figures.py            # writes docs/book/images/
    python docs/book/make_figures.py OUT_DIR    # writes elsewhere

Figures that show numbers (pooling, optimizer paths, finite differences) compute them with
the library's own functions, so the pictures show what the code does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Rectangle  # noqa: E402

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent.parent))  # the repository's cnn, when run as a script

import cnn  # noqa: E402
from cnn.datasets import mnist_sample  # noqa: E402
from cnn.layers import Flatten, Input, Output  # noqa: E402
from cnn.models import Sequential  # noqa: E402
from cnn.ops.pooling import pool2d_backward, pool2d_forward  # noqa: E402
from cnn.optimizers import SGD, Adam  # noqa: E402

IMAGES = ROOT / "images"
DPI = 110
PALE = "#eef2f7"
ACCENT = "#f4a259"
BLUE = "#5b8def"
GREEN = "#6cc070"
EDGE = "#44546a"


def grid(ax, left, top, rows, cols, fill=None, text=None, size=1.0, fontsize=9, edge=EDGE):
    """Draw a rows x cols grid whose top-left corner is (left, top), y growing downwards.

    ``fill`` and ``text`` map (row, col) to a colour / a label.
    """
    fill, text = fill or {}, text or {}
    for r in range(rows):
        for c in range(cols):
            ax.add_patch(Rectangle((left + c * size, top + r * size), size, size,
                                   facecolor=fill.get((r, c), "white"), edgecolor=edge, lw=0.8))
            if (r, c) in text:
                ax.text(left + (c + 0.5) * size, top + (r + 0.5) * size, text[(r, c)],
                        ha="center", va="center", fontsize=fontsize)


def outline(ax, left, top, rows, cols, color, lw=2.5, size=1.0):
    ax.add_patch(Rectangle((left, top), cols * size, rows * size, fill=False,
                           edgecolor=color, lw=lw))


def arrow(ax, start, end, color=EDGE, style="-|>", lw=1.4, rad=0.0):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=12, color=color,
                                 lw=lw, connectionstyle=f"arc3,rad={rad}"))


def canvas(ax, width, height):
    ax.set_xlim(-0.5, width)
    ax.set_ylim(height, -0.8)
    ax.set_aspect("equal")
    ax.axis("off")


def conv_receptive_field(path):
    fig, (fwd, bwd) = plt.subplots(1, 2, figsize=(11, 4.4))
    taps = {(i, j): f"$w_{{{i}{j}}}$" for i in range(3) for j in range(3)}

    # Forward: output (1, 2) reads input rows 1-3, columns 2-4.
    p, q = 1, 2
    fill = {(p + i, q + j): "#fde2c8" for i in range(3) for j in range(3)}
    text = {(p + i, q + j): taps[i, j] for i in range(3) for j in range(3)}
    grid(fwd, 0, 0, 6, 6, fill, text)
    outline(fwd, q, p, 3, 3, ACCENT)
    grid(fwd, 8, 1, 4, 4, {(p, q): ACCENT}, {(p, q): "$y_{12}$"})
    arrow(fwd, (5.1, 2.5), (8 + q + 0.1, 1 + p + 0.5), ACCENT, rad=-0.25)
    fwd.text(3, -0.4, "input $x$ (6 x 6)", ha="center")
    fwd.text(10, 0.6, "output $y$ (4 x 4)", ha="center")
    fwd.text(6, 6.9, r"forward: $y_{pq} = \sum_{i,j} w_{ij}\, x_{p+i,\,q+j}$", ha="center",
             fontsize=11)
    canvas(fwd, 12.5, 7.3)

    # Backward: input (3, 3) is read by outputs (p, q) = (3 - i, 3 - j), through tap (i, j).
    u, v = 3, 3
    grid(bwd, 0, 0, 6, 6, {(u, v): BLUE}, {(u, v): r"$\bar{x}_{33}$"})
    fill = {(u - i, v - j): "#cfdcfb" for i in range(3) for j in range(3)}
    text = {(u - i, v - j): taps[i, j] for i in range(3) for j in range(3)}
    grid(bwd, 8, 1, 4, 4, fill, text)
    outline(bwd, 8 + v - 2, 1 + u - 2, 3, 3, BLUE)
    arrow(bwd, (8 + v - 2 - 0.1, 1 + u - 0.5), (v + 0.9, u + 0.5), BLUE, rad=0.2)
    bwd.text(3, -0.4, r"input gradient $\bar{x}$", ha="center")
    bwd.text(10, 0.6, r"output gradient $\bar{y}$", ha="center")
    bwd.text(6, 6.9, r"backward: $\bar{x}_{33} = \sum_{i,j} \bar{y}_{3-i,\,3-j}\, w_{ij}$"
             "   (kernel rotated 180°)", ha="center", fontsize=11)
    canvas(bwd, 12.5, 7.3)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def im2col_layout(path):
    fig, ax = plt.subplots(figsize=(11, 3.9))
    colors = plt.get_cmap("tab20")(np.arange(16) % 20)
    cell_color = {(r, c): colors[r * 4 + c] for r in range(4) for c in range(4)}
    grid(ax, 0, 0.5, 4, 4, {k: (*v[:3], 0.55) for k, v in cell_color.items()},
         {(r, c): str(r * 4 + c) for r in range(4) for c in range(4)})
    outline(ax, 1, 1.5, 2, 2, "black", lw=3)
    ax.text(2, 0.1, "input $x$ (4 x 4), one channel", ha="center")

    left = 7.5
    fill, text = {}, {}
    for p in range(3):
        for q in range(3):
            column = p * 3 + q
            for i in range(2):
                for j in range(2):
                    r, c = p + i, q + j
                    fill[(i * 2 + j, column)] = (*cell_color[r, c][:3], 0.55)
                    text[(i * 2 + j, column)] = str(r * 4 + c)
    grid(ax, left, 0.5, 4, 9, fill, text)
    outline(ax, left + 4, 0.5, 4, 1, "black", lw=3)
    for column in range(9):
        ax.text(left + column + 0.5, 4.85, f"({column // 3},{column % 3})", ha="center",
                fontsize=7.5)
    for tap, label in enumerate(["$(0,0)$", "$(0,1)$", "$(1,0)$", "$(1,1)$"]):
        ax.text(left - 0.15, 0.5 + tap + 0.5, label, ha="right", va="center", fontsize=8)
    ax.text(left + 9, 0.1, "cols: 4 taps x 9 output positions", ha="right")
    ax.text(left + 4.5, 5.45, "output position $(p, q)$ of each column", ha="center",
            fontsize=8.5)
    ax.text(left - 1.2, 0.1, "tap $(i,j)$", ha="right", fontsize=8.5)
    arrow(ax, (3.1, 1.6), (left + 4.5, 0.45), "black", rad=-0.2)

    kleft = left + 10.3
    grid(ax, kleft, 2.0, 1, 4, {(0, k): "#fde2c8" for k in range(4)},
         {(0, k): f"$w_{{{k // 2}{k % 2}}}$" for k in range(4)}, size=0.9, fontsize=8)
    ax.text(kleft + 1.8, 1.6, "kernel row $K$", ha="center", fontsize=9)
    ax.text(kleft + 1.8, 3.5, r"$y = K \cdot \mathrm{cols}$" "\n(1 x 9: all outputs\nin one GEMM)",
            ha="center", va="top", fontsize=9)
    canvas(ax, kleft + 4, 5.6)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def max_pool_routing(path):
    x = np.array([[1, 3, 2, 0], [4, 2, 1, 5], [0, 1, 7, 2], [6, 2, 3, 3]],
                 dtype=np.float64)[None, None]
    y_bar = np.array([[0.5, -0.2], [0.3, 0.8]])[None, None]
    y, cache = pool2d_forward(x, 2, mode="max")
    dx_max = pool2d_backward(y_bar, cache)
    _, avg_cache = pool2d_forward(x, 2, mode="avg")
    dx_avg = pool2d_backward(y_bar, avg_cache)
    winners = {(r, c) for r in range(4) for c in range(4) if dx_max[0, 0, r, c] != 0}
    window_colors = {(0, 0): "#fde2c8", (0, 1): "#cfdcfb", (1, 0): "#d5efd6", (1, 1): "#f3d4ec"}
    fill = {(r, c): window_colors[r // 2, c // 2] for r in range(4) for c in range(4)}

    fig, axes = plt.subplots(1, 4, figsize=(12, 3.6), gridspec_kw={"width_ratios": [4, 2.6, 4, 4]})
    panels = [
        (axes[0], 4, "input $x$; max of each window outlined",
         {k: f"{x[0, 0][k]:g}" for k in fill}, fill),
        (axes[1], 2, r"$y$ = max  |  $\bar{y}$",
         {(r, c): f"{y[0, 0, r, c]:g} | {y_bar[0, 0, r, c]:+.1f}" for r in range(2)
          for c in range(2)}, window_colors),
        (axes[2], 4, r"max pooling: $\bar{x}$ (routed)",
         {k: f"{dx_max[0, 0][k]:+.1f}" if k in winners else "0" for k in fill}, fill),
        (axes[3], 4, r"average pooling: $\bar{x} = \bar{y}/4$",
         {k: f"{dx_avg[0, 0][k]:+.3f}" for k in fill}, fill),
    ]
    for ax, size, title, text, colors in panels:
        grid(ax, 0, 0, size, size, colors, text, fontsize=9 if size == 4 else 8.5)
        if size == 4:
            for r in range(0, 4, 2):
                for c in range(0, 4, 2):
                    outline(ax, c, r, 2, 2, EDGE, lw=2)
        if ax in (axes[0], axes[2]):
            for r, c in winners:
                outline(ax, c + 0.08, r + 0.08, 1, 1, "black", lw=2.2, size=0.84)
        ax.set_title(title, fontsize=10)
        ax.set_xlim(-0.2, size + 0.2)
        ax.set_ylim(size + 0.2, -0.2)
        ax.set_aspect("equal")
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def lstm_cell(path):
    fig, ax = plt.subplots(figsize=(10, 5.2))
    ax.add_patch(FancyBboxPatch((1, 0.6), 9.2, 5.0, boxstyle="round,pad=0.1", facecolor=PALE,
                                edgecolor=EDGE, lw=1.2))

    def op(xy, label, color="white"):
        ax.add_patch(Circle(xy, 0.32, facecolor=color, edgecolor=EDGE, lw=1.2, zorder=3))
        ax.text(*xy, label, ha="center", va="center", fontsize=12, zorder=4)

    def box(xy, label, color):
        ax.add_patch(FancyBboxPatch((xy[0] - 0.45, xy[1] - 0.3), 0.9, 0.6,
                                    boxstyle="round,pad=0.05", facecolor=color, edgecolor=EDGE,
                                    zorder=3))
        ax.text(*xy, label, ha="center", va="center", fontsize=11, zorder=4)

    top, gates_y, bottom = 5.0, 2.4, 1.1
    # the cell-state road
    arrow(ax, (0, top), (2.6 - 0.32, top), ACCENT, lw=2.5)
    arrow(ax, (2.6 + 0.32, top), (5.4 - 0.32, top), ACCENT, lw=2.5)
    arrow(ax, (5.4 + 0.32, top), (11.3, top), ACCENT, lw=2.5)
    op((2.6, top), r"$\times$")
    op((5.4, top), "$+$")
    ax.text(-0.1, top + 0.35, "$c_{t-1}$", fontsize=12)
    ax.text(10.9, top + 0.35, "$c_t$", fontsize=12)

    # inputs [h_{t-1}, x_t] along the bottom, feeding the four gates
    ax.plot([0, 7.4], [bottom, bottom], color=EDGE, lw=1.6)
    arrow(ax, (1.6, -0.3), (1.6, bottom), EDGE)
    ax.text(-0.1, bottom + 0.25, "$h_{t-1}$", fontsize=12)
    ax.text(1.7, -0.35, "$x_t$", fontsize=12)
    gates = [(2.6, r"$\sigma$", "f", BLUE), (4.1, r"$\sigma$", "i", BLUE),
             (5.7, "tanh", "g", GREEN), (7.4, r"$\sigma$", "o", BLUE)]
    for x, label, name, color in gates:
        ax.plot([x, x], [bottom, gates_y - 0.3], color=EDGE, lw=1.4)
        box((x, gates_y), label, color)
        ax.text(x + 0.5, gates_y - 0.45, f"${name}_t$", fontsize=11)
    arrow(ax, (2.6, gates_y + 0.3), (2.6, top - 0.32), BLUE)          # f -> forget product
    op((4.9, 3.6), r"$\times$")
    arrow(ax, (4.1, gates_y + 0.3), (4.7, 3.6 - 0.26), BLUE)          # i -> product
    arrow(ax, (5.7, gates_y + 0.3), (5.1, 3.6 - 0.26), GREEN)         # g -> product
    arrow(ax, (4.9, 3.6 + 0.32), (5.4, top - 0.32), EDGE)             # i * g -> sum

    # output: h_t = o * tanh(c_t)
    box((8.6, 4.1), "tanh", GREEN)
    ax.plot([8.6, 8.6], [top, 4.4], color=ACCENT, lw=1.6)
    op((8.6, 2.9), r"$\times$")
    arrow(ax, (8.6, 3.8), (8.6, 2.9 + 0.32), EDGE)
    arrow(ax, (7.4 + 0.45, gates_y + 0.1), (8.6 - 0.3, 2.9 - 0.12), BLUE)
    ax.plot([8.6, 8.6], [2.9 - 0.32, bottom - 0.9], color=EDGE, lw=1.6)
    arrow(ax, (8.6, bottom - 0.9), (11.3, bottom - 0.9), EDGE)
    arrow(ax, (8.6 + 0.32, 2.9), (11.3, 2.9), EDGE)
    ax.text(10.9, 3.05, "$h_t$ (output)", fontsize=11)
    ax.text(10.9, bottom - 0.75, "$h_t$ (to step $t+1$)", fontsize=11)

    ax.text(6.1, 5.9, r"$c_t = f_t \odot c_{t-1} + i_t \odot g_t$" "     "
            r"$h_t = o_t \odot \tanh(c_t)$", ha="center", fontsize=12)
    ax.text(6.1, -0.85, r"gates from $x_t W^\top + h_{t-1} R^\top + b$, blocks in Keras's "
            r"order $i, f, g, o$", ha="center", fontsize=10)
    ax.set_xlim(-0.4, 12.6)
    ax.set_ylim(-1.2, 6.3)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def optimizer_paths(path):
    curvature = np.array([1.0, 25.0])

    def loss(theta):
        return 0.5 * float((curvature * theta**2).sum())

    start = np.array([-4.5, 1.2])
    runs = {"SGD, lr 0.075": SGD(0.075), "SGD + momentum 0.7, lr 0.05": SGD(0.05, momentum=0.7),
            "Adam, lr 0.2": Adam(0.2)}
    paths = {}
    for name, optimizer in runs.items():
        theta = start.copy()
        points = [theta.copy()]
        for _ in range(60):
            optimizer.apply_gradients([theta], [curvature * theta])
            points.append(theta.copy())
        paths[name] = np.array(points)

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2),
                                      gridspec_kw={"width_ratios": [1.6, 1]})
    a, b = np.meshgrid(np.linspace(-5, 1.5, 300), np.linspace(-1.6, 1.6, 200))
    left.contour(a, b, 0.5 * (a**2 + 25 * b**2), levels=np.geomspace(0.05, 40, 12),
                 colors="#b8c2d0", linewidths=0.8)
    colors = [ACCENT, BLUE, GREEN]
    for (name, points), color in zip(paths.items(), colors):
        left.plot(points[:, 0], points[:, 1], "o-", ms=2.5, lw=1.2, color=color, label=name)
        right.semilogy([loss(p) for p in points], color=color, lw=1.6, label=name)
    left.plot(0, 0, "k*", ms=10)
    left.set_xlabel(r"$\theta_1$")
    left.set_ylabel(r"$\theta_2$")
    left.set_title(r"$L = \frac{1}{2}(\theta_1^2 + 25\,\theta_2^2)$, 60 steps from $(-4.5, 1.2)$")
    left.legend(fontsize=8, loc="lower right")
    right.set_xlabel("step")
    right.set_ylabel("loss")
    right.set_title("loss per step")
    right.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def batch_size_curves(path):
    """Softmax regression on the bundled MNIST sample: averaged vs summed batch gradients."""
    (x, y), _ = mnist_sample.load_data()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    styles = {16: "-", 256: "--"}
    for batch in (16, 256):
        for summed, color in ((False, BLUE), (True, ACCENT)):
            cnn.set_seed(0)
            model = Sequential([Input((1, 28, 28)), Flatten(), Output(10)])
            model.compile(0.1 * batch if summed else 0.1, "cross_tropy")
            history = model.fit(x, y, batch_size=batch, epochs=5, verbose=0, seed=0)
            label = (f"batch {batch}, " + ("summed (seed): lr 0.1 on the sum" if summed
                                           else "averaged (cnn): lr 0.1"))
            ax.semilogy(range(1, 6), history.history["loss"], styles[batch], color=color,
                        marker="o", ms=4, label=label)
    ax.set_xticks(range(1, 6))
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (log scale)")
    ax.set_title("the same learning rate 0.1, two batch sizes, two conventions", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def finite_differences(path):
    def f(x):
        return np.tanh(x) * np.exp(x)

    x0 = 0.5
    exact = (1 - np.tanh(x0) ** 2) * np.exp(x0) + np.tanh(x0) * np.exp(x0)
    steps = np.geomspace(1e-12, 1e-1, 89)
    with np.errstate(all="ignore"):
        forward = [abs((f(x0 + h) - f(x0)) / h - exact) for h in steps]
        central = [abs((f(x0 + h) - f(x0 - h)) / (2 * h) - exact) for h in steps]
        x32 = np.float32(x0)
        central32 = [abs(float((f(x32 + np.float32(h)) - f(x32 - np.float32(h)))
                               / (2 * np.float32(h))) - exact) for h in steps]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    floor = 1e-17
    ax.loglog(steps, np.maximum(forward, floor), color=ACCENT, label="forward, float64")
    ax.loglog(steps, np.maximum(central, floor), color=BLUE, label="central, float64")
    ax.loglog(steps, np.maximum(central32, floor), color=GREEN, label="central, float32")
    ax.axvline(1e-6, color=EDGE, ls=":", lw=1)
    ax.text(1.2e-6, 1e-1, r"$h = 10^{-6}$" "\n(numerical_gradient)", fontsize=8)
    ax.set_ylim(1e-14, 10)
    ax.set_xlabel("step $h$")
    ax.set_ylabel("absolute error of the derivative")
    ax.set_title(r"$f(x) = \tanh(x)\,e^x$ at $x = 0.5$")
    ax.grid(alpha=0.3, which="major")
    ax.legend(fontsize=9, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


FIGURES = {
    "conv_receptive_field.png": conv_receptive_field,
    "im2col_layout.png": im2col_layout,
    "max_pool_routing.png": max_pool_routing,
    "lstm_cell.png": lstm_cell,
    "optimizer_paths.png": optimizer_paths,
    "batch_size_curves.png": batch_size_curves,
    "finite_differences.png": finite_differences,
}


def main(out_dir=None) -> list[Path]:
    """Draw every figure into ``out_dir`` (default ``docs/book/images``); return the paths."""
    out = Path(out_dir) if out_dir is not None else IMAGES
    out.mkdir(parents=True, exist_ok=True)
    plt.rcParams.update({"font.size": 10, "svg.hashsalt": "book"})
    written = []
    for name, draw in FIGURES.items():
        draw(out / name)
        written.append(out / name)
    return written


if __name__ == "__main__":
    for written_path in main(sys.argv[1] if len(sys.argv) > 1 else None):
        print(written_path)
