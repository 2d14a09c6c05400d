"""Image decoding: every supported photo format to RGB pixels at the resolution a consumer needs."""

from ipad_qc.io.formats import IMAGE_EXTENSIONS, RAW_EXTENSIONS, is_image_path
from ipad_qc.io.loader import load_image
from ipad_qc.io.raw import RAW_MODES
from ipad_qc.io.types import DecodedImage, DecodeError, DecodeHint, ImageMeta

__all__ = [
    "IMAGE_EXTENSIONS",
    "RAW_EXTENSIONS",
    "RAW_MODES",
    "DecodeError",
    "DecodeHint",
    "DecodedImage",
    "ImageMeta",
    "is_image_path",
    "load_image",
]
