"""Triton kernels of himnet_fast, installed as ``himnet_fast.kernels``.

Each kernel module is reached only through its dispatcher in ``himnet_fast.ops``.
"""
