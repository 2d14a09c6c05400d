"""ipad-qc: find ghosting, lens flare and moiré in folders of photos."""

from ipad_qc.classes import ARTIFACT_CLASSES, CLASS_NAMES

__version__ = "0.1.0"
__all__ = ["ARTIFACT_CLASSES", "CLASS_NAMES", "__version__"]
