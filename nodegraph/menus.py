"""Menus, toolbar and shortcuts of the main window (File, Edit, View, Run)."""

from __future__ import annotations

import contextlib

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QStyle

from engine import api
from nodegraph.export_dialogs import export_onnx_dialog, export_torch_dialog

K = QKeySequence.StandardKey


def _action(win, actions, name, text, slot, shortcut=None, icon=None, checkable=False):
    act = QAction(text, win)
    if shortcut is not None:
        act.setShortcut(QKeySequence(shortcut) if isinstance(shortcut, str) else shortcut)
    if icon is not None:
        act.setIcon(win.style().standardIcon(icon))
    act.setCheckable(checkable)
    act.triggered.connect(slot)
    actions[name] = act
    return act


def build_menus(win) -> dict:
    a: dict = {}
    stack = win.controller.stack
    bar = win.menuBar()
    P = QStyle.StandardPixmap

    m = bar.addMenu("&File")
    m.addAction(_action(win, a, "new", "&New", win.files.new, K.New, P.SP_FileIcon))
    m.addAction(_action(win, a, "open", "&Open…", win.files.open, K.Open, P.SP_DirOpenIcon))
    m.addAction(_action(win, a, "import_onnx", "&Import ONNX Model…", win.files.import_onnx))
    m.addAction(_action(win, a, "load_weights", "Load &Weights…",
                        lambda _=False: win.training.weight_loader.ask()))
    presets = m.addMenu("Open &Preset")
    for p in api.list_presets():
        act = presets.addAction(p["title"])
        act.setToolTip(p["description"])
        act.triggered.connect(lambda _=False, n=p["name"]: win.files.open_document(n))
    win.recent_menu = m.addMenu("Open &Recent")
    win.files.refresh_recent_menu = lambda: _fill_recent(win)
    _fill_recent(win)
    m.addSeparator()
    m.addAction(_action(win, a, "save", "&Save", win.files.save, K.Save, P.SP_DialogSaveButton))
    m.addAction(_action(win, a, "save_as", "Save &As…", win.files.save_as, K.SaveAs))
    export = m.addMenu("&Export")
    export.addAction(_action(win, a, "export", "Canvas as &Image (PNG / SVG)…",
                             win.files.export, "Ctrl+E"))
    # the document's own weights are found beside its file or the preset it came from
    export.addAction(_action(win, a, "export_onnx", "&ONNX…", lambda _=False: export_onnx_dialog(
        win, win.controller.model.doc, win.files.document_source(), win.training.run_weights())))
    export.addAction(_action(win, a, "export_torch", "&PyTorch Project…",
                             lambda _=False: export_torch_dialog(
                                 win, win.controller.model.doc, win.files.document_source(),
                                 win.training.run_weights())))
    m.addSeparator()
    m.addAction(_action(win, a, "quit", "&Quit", win.close, K.Quit))

    m = bar.addMenu("&Edit")
    undo = _action(win, a, "undo", "&Undo", stack.undo, K.Undo, P.SP_ArrowBack)
    redo = _action(win, a, "redo", "&Redo", stack.redo, K.Redo, P.SP_ArrowForward)
    undo.setEnabled(False)
    redo.setEnabled(False)
    stack.canUndoChanged.connect(undo.setEnabled)
    stack.canRedoChanged.connect(redo.setEnabled)
    stack.undoTextChanged.connect(lambda t: _tip(undo, f"Undo {t}"))
    stack.redoTextChanged.connect(lambda t: _tip(redo, f"Redo {t}"))
    m.addActions([undo, redo])
    m.addSeparator()
    m.addAction(_action(win, a, "cut", "Cu&t", win.edit.cut, K.Cut))
    m.addAction(_action(win, a, "copy", "&Copy", win.edit.copy, K.Copy))
    m.addAction(_action(win, a, "paste", "&Paste", lambda: win.edit.paste(), K.Paste))
    m.addAction(_action(win, a, "duplicate", "D&uplicate", win.edit.duplicate, "Ctrl+D"))
    m.addAction(_action(win, a, "delete", "&Delete", win.edit.delete, K.Delete))
    m.addAction(_action(win, a, "select_all", "Select &All", win.edit.select_all, K.SelectAll))
    m.addSeparator()
    m.addAction(_action(win, a, "group", "&Group into Layer", win.edit.group, "Ctrl+G"))
    m.addAction(_action(win, a, "ungroup", "U&ngroup", win.edit.ungroup, "Ctrl+Shift+G"))
    m.addAction(_action(win, a, "save_layer", "Save Layer to &Library", win.edit.save_layer))
    m.addAction(_action(win, a, "frame", "Add Comment/&Frame", win.edit.add_frame, "Ctrl+K"))

    m = bar.addMenu("&View")
    m.addAction(_action(win, a, "fit", "&Fit", win.view.fit, "F"))
    m.addAction(_action(win, a, "zoom_in", "Zoom &In", lambda: win.view.zoom_by(1), K.ZoomIn))
    m.addAction(_action(win, a, "zoom_out", "Zoom &Out", lambda: win.view.zoom_by(-1),
                        K.ZoomOut))
    m.addAction(_action(win, a, "layout", "&Auto-layout", lambda: (
        win.controller.auto_layout(win.view.aspect()), win.view.fit()), "Ctrl+L"))
    m.addAction(_action(win, a, "minimap", "&Minimap", win.toggle_minimap, "M",
                        checkable=True))
    m.addAction(_action(win, a, "leave", "&Leave Layer", lambda: win.controller.leave(),
                        "Backspace"))
    m.addSeparator()
    for dock in (win.palette_dock, win.inspector_dock, win.diagnostics_dock, win.summary_dock,
                 *win.training.docks, win.explorer.dock):
        m.addAction(dock.toggleViewAction())

    m = bar.addMenu("&Run")
    m.addAction(_action(win, a, "validate", "&Validate", win.edit.validate, "Ctrl+Shift+V",
                        P.SP_DialogApplyButton))

    m.addSeparator()
    for name in ("train", "pause", "resume", "step", "stop"):  # training (issue 7)
        m.addAction(win.training.actions[name])
    m.addSeparator()
    for name in ("gradcheck", "heat", "sample", "predict_file"):
        m.addAction(win.training.actions[name])
    a.update(win.training.actions)

    tools = win.addToolBar("Main")
    tools.setObjectName("main_toolbar")
    tools.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    for name in ("new", "open", "save"):
        tools.addAction(a[name])
    tools.addSeparator()
    tools.addActions([undo, redo])
    tools.addSeparator()
    for name in ("fit", "layout", "validate"):
        tools.addAction(a[name])
    tools.addSeparator()
    for name in ("train", "pause", "step", "stop"):
        tools.addAction(a[name])
    for act in a.values():  # shortcuts work while the canvas has focus
        win.addAction(act)
    return a


def _tip(action: QAction, text: str) -> None:
    with contextlib.suppress(RuntimeError):  # the window is being destroyed
        action.setToolTip(text)


def _fill_recent(win) -> None:
    from nodegraph.files import read_recent

    menu = win.recent_menu
    menu.clear()
    recent = read_recent()
    for path in recent:
        act = menu.addAction(path)
        act.triggered.connect(lambda _=False, p=path: win.files.open_document(p))
    menu.setEnabled(bool(recent))
