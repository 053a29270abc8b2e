"""Load, validate and write preference pairs.

Every trainer, scorer and inspector in SRM Studio works on one record type,
:class:`PreferencePair`: a prompt, the response a rater preferred (``chosen``) and the one
they did not (``rejected``). This module turns the formats preference data is published in
into that type and refuses data it cannot trust.

Inputs (``format=`` overrides detection by extension):

* JSON Lines (``.jsonl``, ``.ndjson``): one record per line; blank lines are skipped.
* JSON (``.json``): a top-level list of records. A ``.json`` file whose first character is
  ``{`` is read as JSON Lines, because that is what ``datasets.Dataset.to_json`` writes.
* CSV (``.csv``): every cell is read as text (so ids like ``007`` and responses like ``42``
  survive); an empty ``id``, ``source`` or ``margin`` cell means "absent" and ``margin`` is
  parsed as a number.
* Parquet (``.parquet``).
* A directory written by ``datasets.Dataset.save_to_disk``. A ``DatasetDict`` directory with
  a single split loads that split; with several splits it is an error that names them,
  because silently picking one (say ``train``) would load the wrong data without anyone
  noticing. Pass the split's sub-folder (``path/train``) instead.
* An in-memory ``datasets.Dataset`` (or single-split ``DatasetDict``).

Record shapes, detected per record (so one bad record gets its own message rather than
derailing the whole file):

1. **TRL**: ``prompt``, ``chosen``, ``rejected`` strings. Used as given, verbatim.
2. **HH-RLHF transcripts**: ``chosen`` and ``rejected`` only, each a whole conversation
   ``"\n\nHuman: ...\n\nAssistant: ..."``. The prompt is the longest shared prefix that ends
   with ``"\n\nAssistant:"`` (kept verbatim, like the bundled data); the responses are what
   follows it, stripped of surrounding whitespace.
3. **Chat messages**: ``chosen``/``rejected`` are lists of ``{"role", "content"}``, optionally
   with a ``prompt`` list (TRL's conversational format; it is prepended to both). The final
   turn must be the assistant's and everything before it must match between chosen and
   rejected. The earlier turns become the prompt in HH transcript form, each turn rendered
   as ``"\n\n<Name>: <content>"`` with user -> ``Human``, assistant -> ``Assistant``,
   system -> ``System``, followed by ``"\n\nAssistant:"``; contents are kept verbatim. The
   final contents, stripped, are the responses. A conversation given as HH transcript and
   as chat messages therefore yields the same pair (and the same derived id).

Detection rule: a record with a list in ``prompt``, ``chosen`` or ``rejected`` is chat;
otherwise a record with a ``prompt`` key is TRL; otherwise it is an HH transcript.

Optional fields for every shape: ``id`` (string or integer; integers become strings),
``source`` (string, kept even when empty so written files read back unchanged) and
``margin`` (finite number, stored as float) and ``subset`` (string, a benchmark subset such as
RewardBench's). ``null`` means absent.
A record without an id gets a content hash, ``"sha256:" + sha256(prompt + "\x1f" + chosen +
"\x1f" + rejected).hexdigest()[:16]`` over UTF-8 bytes: the same pair gets the same id on
every run and machine, whichever shape it arrived in. ``source`` falls back to
``default_source``, then the file's stem (``sample_50``), then ``"dataset"`` for in-memory
data.

Step-labelled responses (:class:`StepRecord`, read by :func:`load_steps`) are TRL's
stepwise-supervision format: ``prompt``, ``completions`` (the response's sentences, in order)
and ``labels`` (one bool per sentence, True = good), with optional ``id`` and ``source``. They
come from the same inputs except CSV, whose cells cannot hold the two lists.

Validation is all-or-nothing: every problem in the input is collected and raised together
as one :class:`DataError`, and nothing is returned from an invalid input, so a half-loaded
file can never reach training. An empty or whitespace-only prompt is an error: every
bundled dataset has a prompt on every pair, and an empty one almost always means a column
mapping mistake (for instance HH transcripts next to an empty ``prompt`` column).

Also refused, each with its own message (docs/reliability.md lists them): text no store can
hold (a NUL character, a lone surrogate; :func:`text_problem`), a field named twice (a CSV
column or a key of a JSON object: the readers would drop one value), integers too long for
Python and nesting too deep for its JSON parser, margins beyond float32, and paths that are
not regular files or are over ``$SRM_MAX_INPUT_MB`` (:func:`check_input_file`).

The package, one concern a module: :mod:`srm.data.schema` (the types and the error),
:mod:`srm.data.readers` (a reader per format, and the checks before reading),
:mod:`srm.data.checks` (field checks shared by both record kinds), :mod:`srm.data.pairs` and
:mod:`srm.data.steps` (records to pairs or step records, and the loaders),
:mod:`srm.data.candidates` (Best-of-N records) and
:mod:`srm.data.writers`. Import from ``srm.data``.
"""

from srm.data.candidates import Candidates, load_candidates
from srm.data.checks import text_problem
from srm.data.pairs import ASSISTANT_TAG, CHAT_ROLE_NAMES, load_pairs
from srm.data.readers import FORMATS, check_input_file, max_input_bytes
from srm.data.schema import (
    DEFAULT_STEP_SEPARATOR,
    IN_MEMORY_FILE,
    IN_MEMORY_SOURCE,
    MAX_MARGIN,
    DataError,
    PreferencePair,
    Problem,
    SentenceLabels,
    StepRecord,
    content_id,
)
from srm.data.steps import load_steps
from srm.data.writers import write_dataset_dir, write_json_lines, write_jsonl
from srm.files import DEFAULT_MAX_INPUT_MB, MAX_INPUT_MB_VARIABLE

__all__ = [
    "Candidates",
    "load_candidates",
    "ASSISTANT_TAG",
    "CHAT_ROLE_NAMES",
    "DEFAULT_MAX_INPUT_MB",
    "DEFAULT_STEP_SEPARATOR",
    "FORMATS",
    "IN_MEMORY_FILE",
    "IN_MEMORY_SOURCE",
    "MAX_INPUT_MB_VARIABLE",
    "MAX_MARGIN",
    "DataError",
    "PreferencePair",
    "Problem",
    "SentenceLabels",
    "StepRecord",
    "check_input_file",
    "content_id",
    "load_pairs",
    "load_steps",
    "max_input_bytes",
    "text_problem",
    "write_dataset_dir",
    "write_json_lines",
    "write_jsonl",
]
