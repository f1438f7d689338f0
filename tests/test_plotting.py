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
