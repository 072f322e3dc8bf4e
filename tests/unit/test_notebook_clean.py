"""check_clean finds committed outputs, counts and widget state; --fix clears them."""

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from library.notebooks.clean import check_clean
from library.notebooks.params import code_cells_with_parameters, parse_parameters


def _dirty(path):
    cell = new_code_cell(
        "print(1)", execution_count=4, outputs=[new_output("stream", name="stdout", text="1\n")]
    )
    nb = new_notebook(cells=[new_markdown_cell("# t"), cell, new_code_cell("x = 1")])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    nbformat.write(nb, path)


def test_dirty_notebook_is_reported_and_fixed(tmp_path):
    path = tmp_path / "a.ipynb"
    _dirty(path)
    found = [str(d) for d in check_clean([tmp_path])]
    assert found == [
        f"{path}: cell 2: 1 output(s)",
        f"{path}: cell 2: execution count 4",
        f"{path}: notebook: widget state in metadata.widgets",
    ]
    assert check_clean([path])  # without fix nothing changed
    assert len(check_clean([path], fix=True)) == 3
    assert check_clean([path]) == []
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[1].source == "print(1)"


def test_toolbox_check_clean(tmp_path, monkeypatch):
    from library import run
    from library.errors import UserError

    monkeypatch.setenv("ARTIFACT_DIR", str(tmp_path / "art"))
    _dirty(tmp_path / "a.ipynb")
    with pytest.raises(UserError, match="1 notebook\\(s\\) not clean.*--fix"):
        run.run_toolbox("notebook", "check_clean", paths=[str(tmp_path / "a.ipynb")])
    fixed = run.run_toolbox("notebook", "check_clean", paths=[str(tmp_path / "a.ipynb")], fix=True)
    assert fixed["fixed"] is True
    assert run.run_toolbox("notebook", "check_clean", paths=[str(tmp_path)])["dirty_files"] == []
    with pytest.raises(UserError, match="no such file"):
        run.run_toolbox("notebook", "check_clean", paths=[str(tmp_path / "missing.ipynb")])


def test_parameters_parse_as_yaml_scalars_and_reject_bad_items():
    from library.errors import UserError

    assert parse_parameters(["n=3", "x=0.5", "s=hello", "b=true", "e="]) == {
        "n": 3,
        "x": 0.5,
        "s": "hello",
        "b": True,
        "e": "",
    }
    assert parse_parameters(["url=http://h:1/tap?a=b"]) == {"url": "http://h:1/tap?a=b"}
    with pytest.raises(UserError, match="'nokey': expected NAME=VALUE"):
        parse_parameters(["nokey"])
    with pytest.raises(UserError, match="expected NAME=VALUE"):
        parse_parameters(["1x=2"])


def test_parameters_follow_the_tagged_cell():
    tagged = new_code_cell("n = 1")
    tagged.metadata["tags"] = ["parameters"]
    nb = new_notebook(
        cells=[new_markdown_cell("m"), tagged, new_code_cell("print(n)"), new_code_cell("  ")]
    )
    cells = code_cells_with_parameters(nb, {"n": 2})
    assert cells == [(2, "n = 1"), (2, "# Parameters\nn = 2\n"), (3, "print(n)")]
    untagged = new_notebook(cells=[new_code_cell("print(n)")])
    assert code_cells_with_parameters(untagged, {"n": 2})[0] == (0, "# Parameters\nn = 2\n")
