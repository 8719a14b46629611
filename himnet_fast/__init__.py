"""himnet_fast: HiM-Net weakly-supervised temporal action localization, fast.

Layers: ``himnet_fast.ops`` (dispatchers of the numeric ops), ``himnet_fast.reference``
(the executable spec), ``himnet_fast.model``, ``himnet_fast.data``,
``himnet_fast.evaluation`` and the apps ``python -m himnet_fast.{train,detect,evaluate,synthesize}``.
"""
__version__ = "0.1.0"
