"""Reading a net2net checkpoint (net2fair/importers/net2net/checkpoint.py): a pickle
that would run code is refused, never run."""

from __future__ import annotations

import pytest

from net2fair.importers.net2net import Net2NetImportError, import_net2net


def test_hostile_pickle_never_runs(bad_inputs, tmp_path) -> None:  # noqa: ANN001
    path = bad_inputs["code-running pickle"][0]
    with pytest.raises(Net2NetImportError, match="refused"):
        import_net2net(path, tmp_path / "m")
    assert not (path.parent / "pwned").exists()
