"""The Tokens dock (embedding explorer + tokenizer view) and where its weights come from.

Before any run the explorer shows the weights the Debugger shows: those File ▸ Load
Weights… loaded, else the document's own (shipped) file. A run's weights take over: at each
evaluation point of a live run the worker writes them (``save_weights`` with the request
``"explorer"``) while the dock is on screen (else it is marked stale and refreshed when
raised), and at the run's end its final weights. Plain data
only: the document snapshot and a dict of arrays go to :class:`EmbeddingExplorer`.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QDockWidget, QTabWidget

from engine import api
from nodegraph.training.explorer import EmbeddingExplorer
from nodegraph.training.tokenview import TokenizerView
from nodegraph.training.visible import on_screen

REQUEST = "explorer"
POLL_MS = 1000  # while shown and no run is live: did other weights become the latest?
TOKEN_DATA = ("text_corpus", "sequence_pairs")  # data nodes whose tokens an embedding looks up


def has_tokens(doc: dict) -> bool:
    """True when *doc* has a data node with a tokenizer (a text model, a seq2seq graph)."""
    return any(n.get("type") in TOKEN_DATA for n in doc.get("nodes", []))


class TokensDock(QTabWidget):
    """The Embeddings and Tokenizer tabs."""

    def __init__(self, doc, base_dir, parent=None) -> None:
        super().__init__(parent)
        self.explorer = EmbeddingExplorer()
        self.tokenizer = TokenizerView(doc, base_dir)
        self.addTab(self.explorer, "Embeddings")
        self.addTab(self.tokenizer, "Tokenizer")


class ExplorerRoute(QObject):
    """Feeds the Tokens dock from *training* (a :class:`~nodegraph.training.coordinator.
    TrainingUI`): its session, runs, loaded weights and host."""

    def __init__(self, training, parent=None) -> None:
        super().__init__(parent or training)
        self.training, self.host = training, training.host
        self.widget = TokensDock(self.host.snapshot, self.host.base_dir)
        self.dock = QDockWidget("Tokens", self.host.window)
        self.dock.setObjectName("tokens")
        self.dock.setWidget(self.widget)
        self.source: str | None = None  # the weights file shown
        self.stale = True
        session = training.session
        session.records.connect(self.on_records)
        session.saved.connect(self.on_saved)
        session.finished.connect(lambda _msg: self.refresh())
        training.controller.document_replaced.connect(self.on_document)
        self.dock.visibilityChanged.connect(self._visible)
        self.widget.explorer.refresh_button.clicked.connect(self.refresh)
        self.poll = QTimer(self)
        self.poll.setInterval(POLL_MS)
        self.poll.timeout.connect(self.follow)
        self.poll.start()

    @property
    def explorer(self) -> EmbeddingExplorer:
        return self.widget.explorer

    def _visible(self, on: bool) -> None:
        if on and self.stale:
            self.refresh()
        else:
            self.follow()

    def follow(self) -> bool:
        """Refresh when the latest weights changed (File ▸ Load Weights…, a run's end) while
        the dock is on screen and no run is live; True when it did."""
        if self.training.session.active or not on_screen(self.widget):
            return False
        best = self.best_weights()
        if (best[0] if best else None) == self.source:
            return False
        return self.refresh()

    def on_document(self) -> None:
        self.source, self.stale = None, True
        self.explorer.clear()
        self.widget.tokenizer.update_tokens()
        if on_screen(self.widget):
            self.refresh()

    def best_weights(self) -> tuple[str, str] | None:
        """(path, label): the latest run's (or later loaded) weights, else the shipped ones."""
        return self.training.run_weights() or self.training.inspection.shipped_weights()

    def refresh(self) -> bool:
        """Show the explorer for the current document and :meth:`best_weights`."""
        self.stale = False
        best = self.best_weights()
        self.source = best[0] if best else None
        if not has_tokens(self.host.controller.model.doc):
            self.explorer.clear("This graph has no text data node, so no token embeddings "
                                "to explore (open char_gpt, word_gpt or seq2seq_dates).")
            return False
        return self.show_weights(best)

    def show_weights(self, source: tuple[str, str] | None) -> bool:
        if source is None:
            return self.explorer.set_source(self.host.snapshot(), None, "")
        try:
            weights = api.load_weights_file(source[0])  # read afresh: a run rewrites one file
        except (api.errors.WiregradError, OSError) as exc:
            self.explorer.clear(f"Cannot read the weights {source[0]}: {exc}")
            return False
        self.source = source[0]
        return self.explorer.set_source(self.host.snapshot(), weights, source[1])

    def on_records(self, records: list) -> None:
        """At a live run's evaluation point, ask the worker for its weights when the dock is
        on screen (not behind another tab: ``isVisible`` stays true there, and each request
        cost the worker a weights file and the GUI a ~170 ms projection on char_gpt)."""
        if any(r.get("kind") == "eval" for r in records):
            if on_screen(self.widget) and has_tokens(self.host.controller.model.doc):
                self.training.session.save_weights(request=REQUEST)
            else:
                self.stale = True

    def on_saved(self, msg: dict) -> None:
        if msg.get("request") != REQUEST:
            return
        run = self.training.current
        label = f"{run.name} · step {msg.get('step')}" if run is not None else "the run's"
        if self.show_weights((msg["path"], label)):  # (over the generic "Saved weights")
            self.host.status(f"Tokens dock: embeddings of {label}", 4000)
