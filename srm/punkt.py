"""Which Punkt parameters split sentences: an installed NLTK ``punkt_tab``, or the project's own.

Punkt is unsupervised, so the project trains and ships its own English parameters
(``scripts/train_punkt.py`` writes ``srm/resources/punkt_srm.json`` from the bundled text) and
always adds :data:`CURATED_ABBREVIATIONS`; :mod:`srm.segment` uses the tokenizer this module
loads for the sentence rule inside a prose line.


Punkt parameters: when an NLTK ``punkt_tab`` English model is installed
(``nltk.data.find("tokenizers/punkt_tab/english/")``) it is used, otherwise the
bundled parameters are. The environment variable ``SRM_PUNKT`` forces a choice:
``bundled``, ``installed`` (a ``LookupError`` when there is none) or ``auto`` (the
default). Tokenizers are loaded once per source and cached; call
``load_tokenizer.cache_clear()`` after changing ``nltk.data.path``.
"""

import functools
import json
import logging
import os
from collections import defaultdict
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal, cast

if TYPE_CHECKING:  # nltk takes seconds to import: it is loaded with the first tokenizer
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

logger = logging.getLogger(__name__)

PUNKT_ENV_VAR = "SRM_PUNKT"
"""Environment variable that selects the Punkt parameters: auto, bundled or installed."""

PunktSource = Literal["auto", "bundled", "installed"]
PUNKT_SOURCES: tuple[PunktSource, ...] = ("auto", "bundled", "installed")

BUNDLED_PARAMS_RESOURCE = "resources/punkt_srm.json"
"""Path of the bundled Punkt parameters inside the ``srm`` package."""

PARAMS_FORMAT = "srm-punkt/1"
"""Value of the ``format`` key of the bundled parameters file."""

INSTALLED_MODEL = "tokenizers/punkt_tab/english/"
"""NLTK resource name of the installed English ``punkt_tab`` model."""

CURATED_ABBREVIATIONS: frozenset[str] = frozenset(
    {
        # titles and honorifics
        "dr",
        "mr",
        "mrs",
        "ms",
        "messrs",
        "prof",
        "sr",
        "jr",
        "esq",
        "st",
        "rev",
        "hon",
        "gen",
        "col",
        "capt",
        "lt",
        "sgt",
        "gov",
        "sen",
        "rep",
        "supt",
        "ph.d",
        # months and days
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "mon",
        "tue",
        "tues",
        "thu",
        "thur",
        "thurs",
        "fri",
        # Latin and academic
        "e.g",
        "i.e",
        "etc",
        "vs",
        "cf",
        "al",
        "viz",
        "approx",
        "ibid",
        "a.k.a",
        "fig",
        "figs",
        "eq",
        "no",
        "nos",
        "vol",
        "vols",
        "pp",
        "ch",
        "sec",
        "dept",
        "univ",
        "assn",
        "ext",
        # times, places and organisations
        "a.m",
        "p.m",
        "u.s",
        "u.k",
        "u.s.a",
        "u.n",
        "d.c",
        "inc",
        "ltd",
        "llc",
        "co",
        "corp",
        "ave",
        "blvd",
        "rd",
        "mt",
        "ft",
        "est",
        # units
        "oz",
        "lb",
        "lbs",
        "tbsp",
        "tsp",
        "hr",
        "hrs",
    }
)
"""Abbreviations that never end a sentence by themselves, added to every Punkt model.

Lower case and without the final period, as Punkt stores them. A capitalised word
after one can still start a sentence when Punkt's statistics say it usually does
("... in the U.S. The ...").
"""

PUNKT_CHAR_MAP = str.maketrans(
    {
        "\u2018": "'",  # left single quotation mark
        "\u2019": "'",  # right single quotation mark, apostrophe
        "\u201c": '"',  # left double quotation mark
        "\u201d": '"',  # right double quotation mark
        "\u00ab": '"',  # guillemets
        "\u00bb": '"',
    }
)
"""One-to-one character map applied to text before Punkt sees it, in training too.

Punkt's models and older NLTK releases know only ASCII quotes; mapping one
character to one character keeps every offset valid.
"""


def punkt_source_from_env() -> PunktSource:
    """The Punkt source that ``SRM_PUNKT`` asks for, ``"auto"`` when it is unset.

    >>> punkt_source_from_env() in PUNKT_SOURCES
    True
    """
    value = os.environ.get(PUNKT_ENV_VAR, "").strip().lower() or "auto"
    if value not in PUNKT_SOURCES:
        raise ValueError(f"{PUNKT_ENV_VAR}={value!r} is not one of {', '.join(PUNKT_SOURCES)}")
    return cast(PunktSource, value)


@functools.cache
def load_tokenizer(source: PunktSource = "auto") -> "PunktSentenceTokenizer":
    """A Punkt sentence tokenizer with the curated abbreviations added; cached per source.

    ``"installed"`` uses NLTK's ``punkt_tab`` English model (``LookupError`` when it is
    not installed), ``"bundled"`` the parameters shipped with srm, and ``"auto"`` the
    installed model when there is one, else the bundled parameters.

    >>> load_tokenizer("bundled").tokenize("Mr. Li came. He sat.")
    ['Mr. Li came.', 'He sat.']
    """
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    if source not in PUNKT_SOURCES:
        raise ValueError(f"unknown Punkt source {source!r}: use one of {PUNKT_SOURCES}")
    if source == "bundled":
        params = bundled_params()
    elif source == "installed":
        params = installed_params()
    else:
        try:
            params = installed_params()
        except LookupError:
            params = bundled_params()
            source = "bundled"
        else:
            source = "installed"
    params.abbrev_types |= CURATED_ABBREVIATIONS
    logger.info("Punkt sentence tokenizer loaded from the %s parameters", source)
    return PunktSentenceTokenizer(params)


def installed_params() -> "PunktParameters":
    """Parameters of the installed NLTK ``punkt_tab`` English model (``LookupError`` if none).

    Loaded the way ``nltk.tokenize.PunktTokenizer("english")`` loads them.

    >>> installed_params()  # doctest: +SKIP
    <nltk.tokenize.punkt.PunktParameters object at ...>
    """
    from nltk.data import find
    from nltk.tokenize.punkt import load_punkt_params

    return load_punkt_params(find(INSTALLED_MODEL))


def bundled_params() -> "PunktParameters":
    """A fresh copy of the Punkt parameters bundled in ``srm/resources/punkt_srm.json``.

    >>> "e.g" in bundled_params().abbrev_types
    True
    """
    raw = resources.files("srm").joinpath(BUNDLED_PARAMS_RESOURCE).read_text("utf-8")
    return params_from_dict(json.loads(raw))


def params_from_dict(data: dict[str, Any]) -> "PunktParameters":
    """Build ``PunktParameters`` from the JSON form that ``scripts/train_punkt.py`` writes.

    >>> p = params_from_dict({"format": PARAMS_FORMAT, "abbrev_types": ["dr"],
    ...     "collocations": [["##number##", "st"]], "sent_starters": ["the"],
    ...     "ortho_context": {"the": 6}})
    >>> sorted(p.abbrev_types), p.ortho_context["the"], p.ortho_context["unseen"]
    (['dr'], 6, 0)
    """
    from nltk.tokenize.punkt import PunktParameters

    if data.get("format") != PARAMS_FORMAT:
        raise ValueError(
            f"Punkt parameters have format {data.get('format')!r}, expected {PARAMS_FORMAT!r}"
        )
    params = PunktParameters()
    params.abbrev_types = set(data["abbrev_types"])
    params.collocations = {(a, b) for a, b in data["collocations"]}
    params.sent_starters = set(data["sent_starters"])
    params.ortho_context = defaultdict(int, data["ortho_context"])
    return params
