"""One predict protocol for every framework.

Layout:
- ``models``: the architectures as data (pure Python, no framework imports).
- ``weights``: canonical seeded weights in one framework-neutral layout.
- ``backends``: one thin module per framework that lowers a model spec to native layers;
  ``backends.registry`` imports them on demand.
- ``harness``/``stats``/``environment``: the single timing loop and what it records.
- ``result``: the versioned result schema (standard library only, shared with the host).
- ``predict``: the command line (``python -m frameworks.predict``).
"""
