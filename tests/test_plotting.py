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


def test_technique_bars_leave_untimed_techniques_empty() -> None:
    from course_lib.plotting import plot_technique_bars

    fig = plot_technique_bars({"a": 2.0, "b": 4.0}, {"a": 0.5, "b": None})
    memory_ax, speed_ax = fig.axes
    assert [(p.get_x(), p.get_width()) for p in memory_ax.patches] == [(1.0, 1.0), (1.0, 3.0)]  # from 1 to the ratio
    assert (speed_ax.patches[0].get_x(), speed_ax.patches[0].get_width()) == (1.0, -0.5)  # a slow-down: 0.5 to 1
    assert speed_ax.patches[0].get_facecolor() != memory_ax.patches[0].get_facecolor()
    assert speed_ax.patches[1].get_width() == 0.0
    assert [t.get_text() for t in speed_ax.texts] == ["not timed"]
    plt.close("all")
    with pytest.raises(ValueError, match="same techniques"):
        plot_technique_bars({"a": 2.0}, {"b": 1.0})
