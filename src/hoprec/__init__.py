"""hoprec: recommendations learned from a shop's whole relational database.

The package reads as the pipeline it runs: ``data`` (schema, sources, ingest, id maps) ->
``task`` (predictive query, cutoffs, labels) -> ``graph`` -> ``models`` -> ``train`` ->
``evaluate`` -> ``serve``.  A module imports only from stages before it.
"""

__version__ = "0.1.0"
