import numpy as np
import pytest

from quantscope.cli import main
from quantscope.vq import gaussian_mixture


@pytest.fixture
def files(tmp_path):
    X = gaussian_mixture(1200, 16, seed=14)
    np.save(tmp_path / "emb.npy", X[:1100])
    np.save(tmp_path / "q.npy", X[1100:])
    return tmp_path


def test_vectors_table_recall_and_html(files, capsys):
    html = files / "r.html"
    rc = main(["vectors", str(files / "emb.npy"), "--pq", "4x4", "--opq", "--queries", str(files / "q.npy"),
               "--html", str(html), "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "bytes per vector" in out and "recall@10" in out and "OPQ 4x4" in out
    text = html.read_text()
    assert text.startswith("<!DOCTYPE html>") and 'id="rate"' in text and 'id="gauss"' in text
    assert 'id="per-subspace"' in text and "data:image/png;base64," in text


def test_vectors_bad_input(files, capsys):
    assert main(["vectors", str(files / "emb.npy"), "--pq", "5x4", "--quiet"]) == 2
    assert "not divisible by n_subspaces=5" in capsys.readouterr().err
    np.save(files / "q8.npy", np.zeros((3, 8), np.float32))
    assert main(["vectors", str(files / "emb.npy"), "--pq", "4x4", "--queries", str(files / "q8.npy"),
                 "--quiet"]) == 2
    assert "same dimension" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["vectors", str(files / "emb.npy"), "--pq", "4by4"])
