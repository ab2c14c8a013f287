"""The README's "Adding a method" example, run as written: imported, then found by the CLI.

No ``from __future__ import annotations`` here on purpose: the snippet is pasted into such a
module, where config fields carry real type objects rather than their text.
"""

import csv
import importlib
import json
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from promptlearning.backbones import tiny_backbone
from promptlearning.cli.main import main
from promptlearning.methods import ENTRY_POINT_GROUP, METHODS
from promptlearning.model import PromptModel

from .conftest import toy_examples

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_snippet() -> str:
    """The first Python block under the README's "### Adding a method" heading, verbatim."""
    text = README.read_text()
    section = text[text.index("### Adding a method"):]
    section = section[:section.index("\n## ")]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found is not None, "the README's 'Adding a method' section lost its Python block"
    return found.group(1)


@pytest.fixture
def fresh_name() -> Iterator[str]:
    """A module name never imported before; the method it registers is forgotten afterwards."""
    name = f"readme_method_{uuid.uuid4().hex[:8]}"
    yield name
    METHODS.pop("my_method", None)
    sys.modules.pop(name, None)


def _train_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows([e.text_a, ["neg", "pos"][e.label]] for e in toy_examples(12, seed=5))
    return path


def _train_and_reload(tmp_path: Path) -> None:
    out = tmp_path / "run"
    code = main(["train", "--train-file", str(_train_file(tmp_path)), "--backbone", "tiny-bert", "--shots", "4",
                 "--max-steps", "3", "--eval-every", "3", "--quiet", "--method", "my_method",
                 "--option", "num_tokens=4", "--output", str(out)])
    assert code == 0
    saved = json.loads((out / "best" / "adapter_config.json").read_text())
    assert saved["method"] == "my_method" and saved["method_config"] == {"num_tokens": 4}
    model = PromptModel.from_pretrained(out / "best", backbone=tiny_backbone("bert"))
    assert type(model.method).name == "my_method" and model.method.config.num_tokens == 4
    assert tuple(model.method.prompt.shape) == (4, 32)
    assert model.method.prompt.abs().sum() > 0  # trained away from its zero start, and those values reloaded


def test_the_snippet_module_has_no_future_import() -> None:
    assert "from __future__" not in readme_snippet()
    assert not any(line.startswith("from __future__") for line in Path(__file__).read_text().splitlines())


def test_the_readme_method_trains_from_the_cli_and_its_adapter_reloads(tmp_path: Path, fresh_name: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / f"{fresh_name}.py").write_text(readme_snippet())
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(fresh_name)  # "import it first"
    config = module.MyConfig.from_dict({"num_tokens": 4})  # the option parses as an integer, not "<class 'int'>"
    assert config.num_tokens == 4
    _train_and_reload(tmp_path)


def test_an_entry_point_makes_the_readme_method_known_without_an_import(tmp_path: Path, fresh_name: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / f"{fresh_name}.py").write_text(readme_snippet())
    info = plugin / f"{fresh_name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {fresh_name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nmy_method = {fresh_name}\n")
    monkeypatch.syspath_prepend(str(plugin))  # as `pip install` would make it importable
    assert fresh_name not in sys.modules and "my_method" not in METHODS
    _train_and_reload(tmp_path)
    assert fresh_name in sys.modules  # imported by the registry through the entry point


def test_an_unknown_method_names_both_ways_to_add_one() -> None:
    from promptlearning.errors import UnknownNameError
    from promptlearning.methods import get_method

    with pytest.raises(UnknownNameError, match=f"import its module first or declare it .* {ENTRY_POINT_GROUP}"):
        get_method("not_a_method_anywhere")
    with pytest.raises(UnknownNameError, match=r"unknown method 'ptuning_v2' \(did you mean p_tuning_v2\?\)"):
        get_method("ptuning_v2")


def test_a_broken_plugin_is_skipped_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from promptlearning.registry import load_entry_points

    name = f"broken_plugin_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("raise RuntimeError('boom')\n")
    info = tmp_path / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[test.{name}]\nbroken = {name}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(UserWarning, match="skipped the .* plugin 'broken'.*RuntimeError: boom.*fix or uninstall"):
        assert load_entry_points(f"test.{name}") == []
