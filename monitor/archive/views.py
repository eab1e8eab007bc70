"""SQL views for the common questions, so the archive answers them in plain SQL (docs/SCHEMA.md).

* ``daily_complaint_volume (brand, day, mentions, complaints)``: per brand and UTC day, from the
  ``volume_hourly`` rollup (so it survives mention retention). A complaint is a mention whose
  complaint probability is at least 0.5 (the default ``classifier.complaint_threshold``).
* ``incident_response_times``: each incident with when it was opened, acknowledged (in Slack)
  and resolved, and the first post by one of the brand's own accounts (``brand_accounts``,
  copied from the config's ``brands[].handles``) at or after it opened: the first public
  response. Durations are in seconds; NULL when it has not happened (or no handle is known).

SQLite and PostgreSQL spell day and duration arithmetic differently, so each view has one body
per dialect; the columns and their meaning are the same. Revision 0005 creates them
(``migrations/versions/0005_analyst.py``); a change to a view is a new revision.
"""

from __future__ import annotations

VIEW_NAMES = ("daily_complaint_volume", "incident_response_times")
