"""How a mention is matched to a brand: the brand query language (``query``).

Owns: parsing a brand's ``query`` (words, "phrases", @handles, #hashtags, AND/OR/NOT) into a
:class:`~monitor.brands.query.BrandMatcher` that the pipeline runs on every mention, and the
errors that name the bad character. ``connectors.querytext`` re-reads the same surface syntax to
build source search strings (connectors must not import ``monitor``).

May import: ``monitor.errors`` only. Must not import: the CLI, the daemon or any stage.
"""
