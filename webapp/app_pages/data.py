"""Data: import preference pairs, browse them with filters, export the corrected dataset."""

import logging

import streamlit as st

from srm.data import DataError
from srm.jobs import JobLimitError
from webapp import auth, filters, importing, mdtext, services, widgets

logger = logging.getLogger(__name__)
url = services.store_url()
st.title("Preference data")


def _import(kind: str) -> None:
    """Run the import the form describes; the outcome is shown on the next run."""
    name = st.session_state.get("data.import_name", "")
    try:
        if kind == "upload":
            upload = st.session_state.get("data.upload")
            if upload is None:
                raise services.StoreError("choose a file to upload first")
            result = importing.import_upload(url, upload.name, upload.getvalue(), name)
        else:
            path = st.session_state.get("data.import_path", "").strip()
            if not path:
                raise services.StoreError("type the path of a file or dataset directory first")
            result = importing.import_file(url, path, name)
    except DataError as err:
        st.session_state["data.import_outcome"] = ("problems", err.problems, str(err))
    except (services.StoreError, OSError) as err:
        st.session_state["data.import_outcome"] = ("error", [], mdtext.escape(err))
    except Exception:  # a bug, not bad input: the page says so, the server log has the trace
        logger.exception("import failed")
        st.session_state["data.import_outcome"] = (
            "error",
            [],
            "The import failed unexpectedly and nothing was imported; the server log has the "
            "details.",
        )
    else:
        scoring = ""
        try:
            job_id = importing.score_after_import(url, result)
        except JobLimitError as err:  # the pairs are in; they are scored when there is room
            scoring = f" Not scored yet: {mdtext.escape(err)}."
        except Exception:  # the pairs are in; scoring can be started from the Train page
            logger.exception("could not start scoring the import")
            scoring = " Scoring them could not be started; see the server log."
        else:
            if job_id is not None:
                scoring = (
                    f" Scoring them with the active model (job {job_id}), so the Annotate "
                    "queue opens ordered by disagreement."
                )
        st.session_state["data.import_outcome"] = (
            "ok",
            [],
            f"Imported {result.added:,} new pairs into dataset **{mdtext.escape(result.dataset)}** "
            f"({result.unchanged:,} already there).{scoring}",
        )


summaries = services.dataset_summaries(url)
with st.expander("Import pairs", expanded=not summaries, icon=":material/upload_file:"):
    st.caption(
        "JSONL, JSON, CSV or Parquet files (or a saved Hugging Face dataset directory) of "
        "prompt/chosen/rejected pairs; TRL, HH-RLHF transcripts and chat messages are detected. "
        "A file with any problem is refused as a whole, and every problem is listed."
    )
    st.text_input("Dataset name", key="data.import_name", placeholder="default: the file name")
    upload_tab, path_tab = st.tabs(["Upload", "Path on the server"])
    with upload_tab:
        st.file_uploader("File", type=["jsonl", "json", "csv", "parquet"], key="data.upload")
        st.button("Import upload", key="data.import_upload", on_click=_import, args=("upload",))
    with path_tab:
        if auth.is_admin():
            st.text_input("Path", key="data.import_path", placeholder="data/sample_50.jsonl")
            st.button("Import path", key="data.import_file", on_click=_import, args=("path",))
            roots = ", ".join(str(root) for root in importing.import_roots()) or "none"
            st.caption(
                "A file or dataset directory under an import folder (relative paths start at "
                f"the project directory): {mdtext.escape(roots)}. Set `SRM_IMPORT_ROOTS` "
                "to change them."
            )
        else:
            st.caption("Importing a path on the server needs the admin role: upload the file.")
    outcome = st.session_state.get("data.import_outcome")
    if outcome:
        kind, problems, message = outcome
        if kind == "ok":
            st.success(message)  # escaped when the outcome was recorded
        elif kind == "problems":
            st.error(f"{len(problems)} problem(s); nothing was imported.")  # safe: a number
            st.dataframe(
                [
                    {
                        "file": p.file,
                        "where": p.location,
                        "field": p.field or "",
                        "problem": p.message,
                    }
                    for p in problems
                ],
                hide_index=True,
                width="stretch",
            )
        else:
            st.error(message)  # escaped when the outcome was recorded

if not summaries:
    st.info(
        "The store is empty. Import the bundled sample above (path `data/sample_50.jsonl`), "
        "or with `srm import data/sample_50.jsonl`."
    )
    st.stop()

bar = filters.filter_bar(
    url,
    "data",
    [s["name"] for s in summaries],
    lambda _: filters.LABEL_STATUSES,
    status_label="Label status",
    status_key="label",
    all_datasets=True,
    search_placeholder="id, prompt or response text",
)
dataset, source, search = bar.dataset, bar.source, bar.search

options_row = st.columns([3, 3, 1, 1])
bounds = services.margin_range(url, dataset)
margin = None
if bounds is not None and bounds[0] < bounds[1]:
    picked = options_row[0].slider(
        "Margin (as imported)", bounds[0], bounds[1], bounds, key="data.margin"
    )
    margin = None if tuple(picked) == tuple(bounds) else tuple(picked)
active = services.active_model(url)
disagree = options_row[1].toggle(
    "Only pairs the active model disagrees with",
    key="data.disagree",
    disabled=active is None or active.id is None,
    help="Needs the model's scores: score the dataset on the Train page.",
)
page_size = options_row[2].selectbox("Per page", [10, 25, 50, 100], index=1, key="data.page_size")

pair_filter = services.pair_filter(
    source=source,
    **filters.label_filter(bar.status),
    margin=margin,
    disagreeing_model=active.id if disagree and active is not None else None,
)
n_matching = services.pair_count(url, dataset, search, pair_filter)
n_pages = max(1, -(-n_matching // page_size))
if st.session_state.get("data.page", 1) > n_pages:  # a narrower filter shrank the page count
    st.session_state["data.page"] = 1
page = options_row[3].number_input(
    f"Page (of {n_pages})", min_value=1, max_value=n_pages, key="data.page"
)

counts = services.label_summary(url, dataset)
metrics = st.columns(1 + len(filters.LABEL_COUNTS))
metrics[0].metric("Pairs", f"{sum(counts.values()):,}")
for col, name in zip(metrics[1:], filters.LABEL_COUNTS, strict=True):
    col.metric(name.capitalize(), f"{counts.get(name, 0):,}")

rows = services.pair_page(url, dataset, search, int(page) - 1, page_size, pair_filter)
st.caption(f"{services.plural(n_matching, 'matching pair')} · showing {len(rows)}")  # safe: numbers
st.dataframe(
    [
        {
            "id": r.id,
            "dataset": r.dataset,
            "source": r.source,
            "label": r.label or "",
            "margin": widgets.number_cell(r.margin),  # "—" for an unscored pair
            "prompt": r.prompt.strip(),
            "chosen": r.chosen,
            "rejected": r.rejected,
        }
        for r in rows
    ],
    hide_index=True,
    width="stretch",
    column_config={
        "prompt": st.column_config.TextColumn(width="large"),
        "chosen": st.column_config.TextColumn(width="large"),
        "rejected": st.column_config.TextColumn(width="large"),
        "margin": st.column_config.TextColumn(),
    },
)

if rows:
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    picked_id = left.selectbox("Open a pair", [r.id for r in rows], key="data.pair")
    if right.button("Inspect", key="data.open", icon=":material/manage_search:", type="primary"):
        pair = next(r for r in rows if r.id == picked_id)
        st.session_state["inspect.target"] = (pair.dataset, pair.id)
        st.switch_page("app_pages/inspect.py")

st.divider()
st.subheader("Export")
if dataset is None:
    st.caption("Pick one dataset above to export it with its corrections applied.")
else:
    if st.button("Prepare corrected export", key="data.export"):
        data, summary = importing.export_jsonl(url, dataset)
        st.session_state["data.export_ready"] = (dataset, data, summary)
    ready = st.session_state.get("data.export_ready")
    if ready and ready[0] == dataset:
        st.caption(ready[2])
        st.download_button(
            "Download JSONL",
            ready[1],
            file_name=f"{dataset}.corrected.jsonl",
            mime="application/jsonl",
            key="data.download",
            icon=":material/download:",
        )
    st.caption(
        "Swapped pairs come out swapped, ties and discards are left out. For Hugging Face "
        "datasets or PRM step labels use `srm export --format hf|prm`."
    )
