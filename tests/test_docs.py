"""Every config group has a docs page, and every option is listed on it."""

import pytest

from conftest import REPO

GROUPS = sorted(p.name for p in (REPO / "conf").iterdir() if p.is_dir() and p.name not in {"hydra", "__pycache__"})


@pytest.mark.parametrize("group", GROUPS)
def test_each_option_is_documented(group):
    page = REPO / "docs" / f"{group}.md"
    assert page.is_file(), f"docs/{group}.md is missing"
    text = page.read_text()
    missing = [f.stem for f in (REPO / "conf" / group).glob("*.yaml") if f"`{f.stem}`" not in text]
    assert not missing, f"docs/{group}.md does not list {missing}"


def test_readme_gives_the_two_commands():
    readme = (REPO / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "make test" in (REPO / ".ci" / "run").read_text()
