"""OpenCV decoding from the file straight into one preallocated buffer of the decoded size.

``cv2.imdecode`` needs the whole file in memory and, in OpenCV 5.0, briefly holds a second copy of
the decoded image: a 100-megapixel 16-bit PNG or LZW TIFF peaks at 2.3x its decoded size.
``cv2.imread`` into a buffer of the right layout writes the pixels once, 1.0x, and reads the file
in pieces. Two catches are handled here:

- OpenCV opens files by name, and names need not be valid UTF-8; it is given the descriptor this
  process holds open instead (``/proc/self/fd/N``): the very file that passed the decoder's checks.
- ``imread`` returns the buffer untouched, without saying so, when the codec cannot even read the
  file's header. The first and last pixels are set to an unlikely value beforehand; a buffer whose
  both still hold it was not decoded into (or, once in ~2^48 pictures, was, identically), and the
  caller decodes the file the ordinary way, which names the reason or gives the same pixels.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

#: Keep 16-bit depth and grey; alpha is dropped by ANYCOLOR. Orientation is applied by the loader.
AS_STORED = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR | cv2.IMREAD_IGNORE_ORIENTATION
#: Where a process's open files have names (Linux).
_FD_PATHS = Path("/proc/self/fd")
_SENTINELS = {np.dtype(np.uint8): (0x5A, 0xC3, 0x3C), np.dtype(np.uint16): (0x5AC3, 0xC33C, 0x3C5A),
              np.dtype(np.float32): (-1234.5, -4321.25, -2143.75)}


def supported() -> bool:
    """True where open files can be handed to OpenCV by descriptor (Linux)."""
    return _FD_PATHS.is_dir()


def imread_into(fd: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray | None:
    """The picture in the open file ``fd``, decoded by OpenCV (``AS_STORED``) into a new array of
    ``shape`` and ``dtype``; ``None`` when OpenCV did not decode into it (a layout other than
    predicted, a file it cannot read): decode it with ``cv2.imdecode`` then."""
    dtype = np.dtype(dtype)
    if dtype not in _SENTINELS or not supported():
        return None
    buffer = np.empty(shape, dtype)
    channels = 1 if buffer.ndim == 2 else buffer.shape[2]
    mark = np.asarray(_SENTINELS[dtype][:channels], dtype)
    first, last = buffer.reshape(-1, channels)[0], buffer.reshape(-1, channels)[-1]
    first[:], last[:] = mark, mark
    try:
        pixels = cv2.imread(f"{_FD_PATHS}/{fd}", buffer, AS_STORED)
    except cv2.error:  # the file's layout is not the one predicted
        return None
    if pixels is None or not pixels.size or (np.array_equal(first, mark) and np.array_equal(last, mark)):
        return None
    return pixels
