"""The host orchestrator: builds the images of the variant catalog and runs the matrix.

Never imports a deep-learning framework: the frameworks run inside containers (``docker``
backend) or per-variant virtualenvs (``local`` backend), through ``python -m frameworks.predict``.
"""
