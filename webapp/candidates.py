"""Best-of-N for the page: an uploaded (or the example) candidates file, ranked by the
active model (:mod:`srm.bestofn`), cached per file content and model."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import streamlit as st

from srm.bestofn import Ranking
from webapp import scoring
from webapp.services import PROJECT_DIR, ModelInfo

EXAMPLE = PROJECT_DIR / "data" / "best_of_n_example.jsonl"
"""A few prompts with four candidates each, to try the page without a file."""


def rank_file(model: ModelInfo, name: str, data: bytes) -> list[Ranking]:
    """Read ``data`` (the file ``name``, for messages and its format) and rank it; raises
    ``srm.data.DataError`` listing every problem with its line and field."""
    return _rank(model.path, scoring.model_mtime(model.path), name, data)


@st.cache_data(show_spinner="Ranking the candidates…", max_entries=8)
def _rank(path: str, mtime: float, name: str, data: bytes) -> list[Ranking]:
    from srm.bestofn import rank
    from srm.data import DataError, load_candidates

    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / (Path(name).name or "upload.jsonl")  # the suffix says the format
        file.write_bytes(data)
        try:
            items = load_candidates(file)
        except DataError as err:  # name the file as the visitor knows it, not the temporary one
            raise DataError([replace(p, file=name) for p in err.problems]) from None
    return rank(scoring.loaded_model(path, mtime), items)
