"""cubelab's trainer: a batched 3D cellular network for text embeddings, framework-agnostic.

    from trainer import load_config, train
    result = train(load_config("examples/dialogue.yaml"), out_dir="out/demo")
    print(result.summary)
"""

from .config import Config, ConfigError, load_config, parse_config
from .events import Callback

__all__ = ["Config", "ConfigError", "Callback", "load_config", "parse_config", "train"]


def train(*args, **kwargs):
    """See `trainer.loop.train` (imported lazily so `import trainer` stays light)."""
    from .loop import train as _train

    return _train(*args, **kwargs)
