"""Wiregrad's desktop editor (PySide6 + pyqtgraph) over the Qt-free engine.

Importing this package does not import Qt; only the editor modules do. From the engine it uses
``engine.api`` only (enforced by the import-linter contracts in ``pyproject.toml``).
"""
