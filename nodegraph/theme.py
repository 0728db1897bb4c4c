"""The dark theme: colours for categories and dtypes, fonts, and the application stylesheet."""

from __future__ import annotations

from PySide6.QtGui import QColor, QFont, QPalette

BACKGROUND = QColor(30, 32, 36)
GRID_MINOR = QColor(38, 41, 46)
GRID_MAJOR = QColor(48, 52, 58)
NODE_BODY = QColor(46, 49, 56)
NODE_BORDER = QColor(20, 21, 24)
SELECTED = QColor(255, 196, 64)
TEXT = QColor(226, 229, 234)
TEXT_DIM = QColor(150, 156, 166)
ERROR = QColor(228, 72, 72)
WARNING = QColor(232, 170, 60)
LABEL_BG = QColor(24, 26, 30, 225)
FRAME_FILL = QColor(120, 140, 170, 38)
FRAME_BORDER = QColor(120, 140, 170, 140)
HIGHLIGHT = QColor(110, 230, 140)

CATEGORY = {
    "op": QColor(70, 110, 170),
    "layer": QColor(130, 90, 180),
    "loss": QColor(190, 80, 80),
    "optimizer": QColor(200, 130, 50),
    "data": QColor(60, 150, 110),
    "metric": QColor(70, 150, 170),
    "output": QColor(120, 120, 120),
    "io": QColor(90, 100, 120),
}
DTYPE = {"float": QColor(100, 170, 240), "int": QColor(240, 170, 80),
         "any": QColor(180, 180, 190), "bool": QColor(220, 110, 200)}


def category_color(category: str | None) -> QColor:
    return CATEGORY.get(category or "", QColor(100, 100, 110))


def dtype_color(dtype: str | None) -> QColor:
    return DTYPE.get(dtype or "any", DTYPE["any"])


def ui_font(size: float = 9.0, bold: bool = False) -> QFont:
    font = QFont()
    font.setPointSizeF(size)
    font.setBold(bold)
    return font


STYLESHEET = """
QWidget { background: #25282d; color: #e2e5ea; }
QMainWindow::separator { background: #1a1c20; width: 4px; height: 4px; }
QDockWidget::title { background: #2e3138; padding: 4px 6px; }
QMenuBar, QMenu, QToolBar, QStatusBar { background: #2b2e34; }
QMenu::item:selected, QMenuBar::item:selected { background: #3d5a80; }
QLineEdit, QSpinBox, QDoubleSpinBox, QComboBox, QPlainTextEdit, QTextBrowser {
    background: #1d1f23; border: 1px solid #3a3e46; border-radius: 3px; padding: 2px 4px; }
QLineEdit[invalid="true"] { border: 1px solid #e44848; }
QTreeWidget, QListWidget { background: #1f2125; border: none; }
QTreeWidget::item:selected, QListWidget::item:selected { background: #3d5a80; }
QPushButton, QToolButton { background: #353941; border: 1px solid #444851; border-radius: 3px;
    padding: 3px 8px; }
QPushButton:hover, QToolButton:hover { background: #3f444d; }
QHeaderView::section { background: #2e3138; border: none; padding: 3px; }
QScrollBar:vertical { background: #1f2125; width: 10px; margin: 0; }
QScrollBar:horizontal { background: #1f2125; height: 10px; margin: 0; }
QScrollBar::handle { background: #454a53; border-radius: 4px; min-height: 24px; min-width: 24px; }
QScrollBar::add-line, QScrollBar::sub-line { width: 0; height: 0; }
QScrollBar::add-page, QScrollBar::sub-page { background: none; }
QToolTip { background: #1d1f23; color: #e2e5ea; border: 1px solid #555; }
QWidget:disabled { color: #6b7079; }
QPushButton:disabled, QToolButton:disabled { background: #2a2d32; border: 1px solid #33363c;
    color: #6b7079; }
QLineEdit:disabled, QSpinBox:disabled, QDoubleSpinBox:disabled, QComboBox:disabled {
    background: #24262a; border: 1px solid #2f3238; color: #6b7079; }
QMenu::item:disabled { color: #6b7079; }
"""
DISABLED_TEXT = QColor(107, 112, 121)


def apply(app) -> None:
    """The dark Fusion theme on *app*; a no-op when it is already applied (re-applying
    re-polishes every live widget)."""
    if app.property("wiregrad_theme"):
        return
    app.setProperty("wiregrad_theme", True)
    app.setStyle("Fusion")
    pal = QPalette()
    for role, color in (
        (QPalette.ColorRole.Window, QColor(37, 40, 45)),
        (QPalette.ColorRole.WindowText, TEXT),
        (QPalette.ColorRole.Base, QColor(29, 31, 35)),
        (QPalette.ColorRole.AlternateBase, QColor(40, 43, 48)),
        (QPalette.ColorRole.Text, TEXT),
        (QPalette.ColorRole.Button, QColor(53, 57, 65)),
        (QPalette.ColorRole.ButtonText, TEXT),
        (QPalette.ColorRole.Highlight, QColor(61, 90, 128)),
        (QPalette.ColorRole.HighlightedText, TEXT),
        (QPalette.ColorRole.ToolTipBase, QColor(29, 31, 35)),
        (QPalette.ColorRole.ToolTipText, TEXT),
    ):
        pal.setColor(role, color)
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text,
                 QPalette.ColorRole.ButtonText):  # disabled actions look disabled
        pal.setColor(QPalette.ColorGroup.Disabled, role, DISABLED_TEXT)
    app.setPalette(pal)
    app.setStyleSheet(STYLESHEET)
