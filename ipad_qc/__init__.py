"""ipad-qc: find ghosting, lens flare and moiré in folders of photos.

The Python API for use inside other pipelines::

    from ipad_qc import load_image, get_detector, scan

    detector = get_detector("classic")
    image = load_image("IMG_0001.CR2", detector.decode_hint)
    detection = detector.detect([image])[0]
    detection.label, detection.scores, detection.mask()   # mask at the original size

    summary = scan("shots/", "runs/today")                 # the same as `ipad-qc scan`
"""

from ipad_qc.classes import ARTIFACT_CLASSES, CLASS_NAMES
from ipad_qc.detectors.base import Detection, Detector
from ipad_qc.detectors.registry import available_detectors, get_detector, register_detector
from ipad_qc.io import DecodedImage, DecodeError, DecodeHint, ImageMeta, load_image
from ipad_qc.scanner import ScanOptions, ScanSummary, scan
from ipad_qc.store import ResultStore

__version__ = "0.1.0"
__all__ = [
    "ARTIFACT_CLASSES",
    "CLASS_NAMES",
    "DecodeError",
    "DecodeHint",
    "DecodedImage",
    "Detection",
    "Detector",
    "ImageMeta",
    "ResultStore",
    "ScanOptions",
    "ScanSummary",
    "__version__",
    "available_detectors",
    "get_detector",
    "load_image",
    "register_detector",
    "scan",
]
