"""The Annotate page's parts; the page script, ``app_pages/annotate.py``, picks the queue and
the pair and places these: :mod:`~webapp.annotate.actions` (what the buttons and keys do),
:mod:`~webapp.annotate.pair_view` (the pair on screen: the action bar, the responses with their
sentence tags, settling and review) and :mod:`~webapp.annotate.panels` (the guidelines in the
sidebar, and the progress, queue, disagreements, team and agreement below the pair). The
services they call are in :mod:`webapp.annotation`."""
