"""course_lib.plotting: every figure draws what it is given, with titles and labels."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from course_lib.data import make_linear_data
from course_lib.gradient_descent import mse_many
from course_lib.plotting import plot_loss_curves, plot_paths_on_contours


def test_plots_draw_every_curve_and_path() -> None:
    X, y = make_linear_data((1.0, -1.0), 30)
    ax = plot_loss_curves({"a": (np.arange(3), [3.0, 2.0, 1.0]), "b": (np.arange(3), [2.0, 1.0, 0.5])}, title="t")
    assert [line.get_label() for line in ax.get_lines()] == ["a", "b"] and ax.get_yscale() == "log"
    paths = {"p": np.array([[0.0, 0.0], [0.5, -0.5], [1.0, -1.0]])}
    ax = plot_paths_on_contours(lambda W: mse_many(X, y, W), paths, title="c", minimum=np.array([1.0, -1.0]))
    labels = [line.get_label() for line in ax.get_lines()]
    assert "p" in labels and "minimum" in labels and ax.get_title() == "c"
    plt.close("all")
    with pytest.raises(ValueError, match="at least one"):
        plot_paths_on_contours(lambda W: mse_many(X, y, W), {}, title="empty")


# --- lesson 01 ---
def test_draw_value_graph_draws_each_node_once_and_each_use_as_an_arrow() -> None:
    from matplotlib.text import Annotation

    from course_lib.autograd import Value
    from course_lib.plotting import draw_value_graph, value_graph_layers

    a = Value(3.0)
    square = a * a
    f = square + a  # a is used three times: twice by *, once by +
    f.backward()
    layers = value_graph_layers(f)
    assert [layers[f], layers[square], layers[a]] == [0, 1, 2]  # a sits below both of its users
    ax = draw_value_graph(f, "t", names={"a": a, "f": f})
    boxes = [t for t in ax.texts if not isinstance(t, Annotation)]
    arrows = [t for t in ax.texts if isinstance(t, Annotation)]
    assert len(boxes) == 3 and len(arrows) == 4 and ax.get_title() == "t"
    assert {b.get_text() for b in boxes} == {"f (+)\ndata=12  grad=1", "*\ndata=9  grad=1", "a\ndata=3  grad=7"}
    # one arrow per use: a*a twice (the second curved), f -> * and f -> a (bent past *)
    assert sorted(a.arrow_patch.get_connectionstyle().rad for a in arrows) == [-0.75, 0.0, 0.0, 0.35]
    plt.close("all")
# --- lesson 03 ---


def test_draw_im2col_shows_the_real_windows_rows_and_output() -> None:
    import torch
    import torch.nn.functional as F

    from course_lib.plotting import draw_im2col

    image, kernel = np.arange(1, 17).reshape(4, 4), np.eye(3)
    ax = draw_im2col(image, kernel).axes[0]

    def numbers(gid: str) -> list[float]:
        return [float(t.get_text()) for t in ax.texts if t.get_gid() == gid]

    windows = [image[r:r + 3, c:c + 3].ravel() for r in range(2) for c in range(2)]  # row-major window order
    assert numbers("image") == list(range(1, 17))
    assert numbers("cols") == np.concatenate(windows).tolist()               # one row per window, in order
    conv = F.conv2d(torch.tensor(image, dtype=torch.float64)[None, None], torch.tensor(kernel)[None, None])
    assert numbers("output") == numbers("output grid") == conv.flatten().tolist() == [18, 21, 30, 33]
    outlines = [p.get_edgecolor()[:3] for p in ax.patches if p.get_gid() == "window"]
    row_fills = [p.get_facecolor()[:3] for p in ax.patches if p.get_gid() == "cols"][::9]  # first cell of each row
    out_fills = [p.get_facecolor()[:3] for p in ax.patches if p.get_gid() == "output"]
    assert len(set(outlines)) == 4 and outlines == row_fills == out_fills  # window i, row i, output i: one colour
    plt.close("all")
    with pytest.raises(ValueError, match="square 2-D kernel no larger"):
        draw_im2col(np.ones((2, 2)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="at most 10 windows"):
        draw_im2col(np.ones((5, 5)), np.ones((1, 1)))
