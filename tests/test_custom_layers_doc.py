"""docs/CUSTOM_LAYERS.md: its Python blocks, run in order in one namespace, work as written."""

import re
from pathlib import Path

import numpy as np

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "CUSTOM_LAYERS.md"


def code_blocks(text):
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_the_guide_has_the_worked_example():
    blocks = code_blocks(GUIDE.read_text())
    assert len(blocks) == 3
    assert "class Swish(Layer)" in blocks[0] and "numerical_gradient" in blocks[1]
    assert "load_model" in blocks[2]


def test_the_guides_code_runs_and_its_checks_pass(capsys):
    namespace = {"__name__": "custom_layers_guide"}
    for block in code_blocks(GUIDE.read_text()):
        exec(compile(block, str(GUIDE), "exec"), namespace)  # the guide's own asserts run
    errors = namespace["errors"]
    assert set(errors) == {"input", "beta"} and max(errors.values()) < 1e-6
    loaded = namespace["loaded"]
    assert type(loaded.layers[1]).__name__ == "Swish"
    np.testing.assert_array_equal(loaded.layers[1].params["beta"],
                                  namespace["model"].layers[1].params["beta"])
    assert "loss from" in capsys.readouterr().out
