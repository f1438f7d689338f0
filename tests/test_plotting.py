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

    from course_lib.cnn import im2col
    from course_lib.plotting import draw_im2col

    image, kernel = np.arange(1, 17).reshape(4, 4), np.eye(3)
    ax = draw_im2col(image, kernel, im2col(image[None, None].astype(float), 3)).axes[0]

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
        draw_im2col(np.ones((2, 2)), np.ones((3, 3)), np.ones((1, 9)))
    with pytest.raises(ValueError, match="im2col matrix of this image"):
        draw_im2col(np.ones((4, 4)), np.ones((3, 3)), np.ones((3, 9)))
    with pytest.raises(ValueError, match="at most 10 windows"):
        draw_im2col(np.ones((5, 5)), np.ones((1, 1)), np.ones((25, 1)))


# --- lesson 05 ---

def test_plot_step_timeline_draws_one_bar_per_event_in_its_row() -> None:
    from course_lib.plotting import TIMELINE_ROWS, plot_step_timeline

    timeline = [("all-gather", "fc2", 0.0, 1.0), ("all-gather", "fc1 (prefetch)", 1.0, 3.0),
                ("backward compute", "fc2", 3.0, 3.5), ("reduce-scatter", "fc2", 3.5, 4.0)]
    ax = plot_step_timeline(timeline, title="step")
    bars = ax.patches
    assert len(bars) == 4 and ax.get_title() == "step"
    assert [(b.get_x(), b.get_width(), b.get_y() + b.get_height() / 2) for b in bars] == [
        (0.0, 1.0, 0), (1.0, 2.0, 0), (3.0, 0.5, TIMELINE_ROWS.index("backward compute")),
        (3.5, 0.5, TIMELINE_ROWS.index("reduce-scatter"))]
    assert [b.get_hatch() for b in bars] == [None, "//", None, None]  # the prefetched all-gather is hatched
    assert [t.get_text() for t in ax.texts] == ["fc2", "fc1*", "fc2", "fc2"]
    plt.close("all")
    with pytest.raises(ValueError, match="at least one"):
        plot_step_timeline([], title="empty")
    with pytest.raises(ValueError, match="rows must be among"):
        plot_step_timeline([("compute", "fc1", 0.0, 1.0)], title="bad row")


def test_draw_zero_stages_draws_what_each_rank_holds_per_stage() -> None:
    from course_lib.fsdp import SHARDED_FROM_STAGE, bytes_per_param
    from course_lib.plotting import draw_zero_stages

    ax = draw_zero_stages(2, bytes_per_param("fp32"), SHARDED_FROM_STAGE)
    totals = [t.get_text() for t in ax.texts if t.get_text().endswith(" B")]
    assert totals == ["16 B", "8 B", "16 B", "16 B", "12 B", "12 B", "10 B", "10 B", "8 B", "8 B"]  # DP: GPU 0 steps
    plt.close("all")
    with pytest.raises(ValueError, match="the same parts"):
        draw_zero_stages(2, {"params": 4}, SHARDED_FROM_STAGE)


def test_plot_bytes_over_step_draws_a_line_per_run_and_the_marks() -> None:
    from course_lib.plotting import plot_bytes_over_step

    curves = {"ddp": ([0.0, 1.0, 2.0], [2**20, 3 * 2**20, 2**20]), "fsdp": ([0.0, 2.0], [2**19, 2**21])}
    ax = plot_bytes_over_step(curves, [(0.5, "pre_forward (fc1)")], title="step")
    assert [line.get_label() for line in ax.get_lines()[:2]] == ["ddp", "fsdp"]
    assert list(ax.get_lines()[0].get_ydata()) == [1.0, 3.0, 1.0]  # MiB
    assert [t.get_text() for t in ax.texts] == ["pre_forward (fc1)"] and ax.get_title() == "step"
    plt.close("all")
    with pytest.raises(ValueError, match="at least one run"):
        plot_bytes_over_step({}, [], title="empty")


# --- lesson 06 ---


def test_lora_diagram_draws_three_blocks_to_scale() -> None:
    from course_lib.plotting import draw_lora_shapes

    ax = draw_lora_shapes(64, 32, 4, name="toy")
    widths = [(p.get_width(), p.get_height()) for p in ax.patches]
    assert widths == [(32 / 64, 1.0), (4 / 64, 1.0), (32 / 64, 4 / 64)]  # W, B, A with the longest side 1
    texts = [t.get_text() for t in ax.texts]
    assert "W (frozen): 64 x 32\n= 2,048 values" in texts and "+" in texts and "@" in texts
    assert ax.get_title() == "toy: LoRA trains r(in+out) = 384 values instead of 2,048"
    plt.close("all")
    with pytest.raises(ValueError, match="r"):
        draw_lora_shapes(64, 32, 0)


def test_nf4_plot_marks_every_level() -> None:
    import torch

    from course_lib.plotting import plot_nf4_levels

    levels = torch.linspace(-1, 1, 16)
    ax = plot_nf4_levels(torch.rand(10, 64) * 2 - 1, levels)
    vlines = [line.get_xdata()[0] for line in ax.get_lines()]
    assert vlines == pytest.approx(levels.tolist())
    assert sum(p.get_height() for p in ax.patches) == 640  # every value lands in the histogram
    plt.close("all")
    with pytest.raises(ValueError, match="16"):
        plot_nf4_levels(torch.zeros(4), torch.zeros(8))


def test_saved_bytes_plot_draws_one_line_per_implementation_in_mib() -> None:
    from course_lib.plotting import plot_saved_bytes_vs_length

    ax = plot_saved_bytes_vs_length([64, 128], {"naive": [2**20, 4 * 2**20], "SDPA": [2**19, 2**20]})
    assert [line.get_label() for line in ax.get_lines()] == ["naive", "SDPA"]
    assert list(ax.get_lines()[0].get_ydata()) == [1.0, 4.0] and ax.get_xscale() == "log"
    plt.close("all")
    with pytest.raises(ValueError, match="one value per length"):
        plot_saved_bytes_vs_length([64, 128], {"naive": [1]})


def test_step_memory_plot_stacks_the_parts_of_each_configuration() -> None:
    from course_lib.plotting import plot_step_memory

    ax = plot_step_memory({"full": {"weights": 2048, "rest": 1024}, "LoRA": {"weights": 2048, "rest": 512}})
    bars = [(p.get_y(), p.get_x(), p.get_width()) for p in ax.patches]
    assert [(x, w) for _, x, w in bars] == [(0.0, 2.0), (0.0, 2.0), (2.0, 1.0), (2.0, 0.5)]  # KiB, stacked
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["weights", "rest"]
    plt.close("all")
    with pytest.raises(ValueError, match="same parts"):
        plot_step_memory({"full": {"weights": 1}, "LoRA": {"rest": 1}})


def test_plotting_imports_no_lesson_module() -> None:
    import subprocess
    import sys

    code = "import sys, course_lib.plotting; print(' '.join(m for m in sys.modules if m.startswith('course_lib.')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    lessons = {"autograd", "gradient_descent", "cnn", "bce", "fsdp", "finetuning"}
    assert not lessons & {name.split(".")[1] for name in loaded}, loaded

