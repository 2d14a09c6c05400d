"""``ipad-net``: the compact fully-convolutional detector trained here from scratch (see :mod:`.model`)."""

from ipad_qc.net.checkpoint import BUNDLED_WEIGHTS, NetCheckpointError, load_net, read_net, save_net
from ipad_qc.net.model import IpadNet, IpadNetConfig, NetOutput

__all__ = ["BUNDLED_WEIGHTS", "IpadNet", "IpadNetConfig", "NetCheckpointError", "NetOutput", "load_net", "read_net",
           "save_net"]
