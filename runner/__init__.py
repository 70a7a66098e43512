"""The host orchestrator: builds the images of the variant catalog and runs the matrix.

Never imports a deep-learning framework: the frameworks run inside containers (the ``docker``
launcher) or per-variant virtualenvs (the ``local`` launcher), through ``python -m frameworks.predict``.
"""
