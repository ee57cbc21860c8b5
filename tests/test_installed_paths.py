"""What only a source checkout has, asked for from an installed package: each says exactly what it needs
instead of failing on a path inside site-packages (issue 23). The installed package itself is tested in
tests/test_install.py; here the checkout is made to look absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import config
from pipeline.evaluation import devset


def test_the_devset_names_where_the_udhr_table_comes_from(tmp_path):
    with pytest.raises(FileNotFoundError, match="comes with a source checkout"):
        devset.udhr(tmp_path / "site-packages" / "tests" / "data" / "udhr-dev.tsv")


def test_deploy_from_an_installed_package_says_it_needs_a_clone(tmp_path, monkeypatch, capsys):
    from flows import scale_out

    monkeypatch.setattr(config, "source_checkout", lambda: None)
    assert scale_out.main("pool", tmp_path / "archive") == 2
    err = capsys.readouterr().err
    assert "run it from a clone of the repository" in err and err.count("\n") == 1


@pytest.mark.parametrize("path, name", [(".", None), ("some-export", ".."), ("some-export", "../../elsewhere")])
def test_a_model_name_that_is_not_a_name_is_refused_before_anything_is_replaced(tmp_path, monkeypatch, path, name):
    """`models import .` would name the model '' and replace the store's whole folder of that kind."""
    from pipeline.errors import ModelMissingError
    from pipeline.store.importer import import_model

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelMissingError, match="cannot name a model in the store"):
        import_model(Path(path), name=name)
