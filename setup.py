# setup.py - only here to hand cffi its builder; metadata lives in pyproject.toml
from setuptools import setup

setup(cffi_modules=["native/build_ffi.py:ffibuilder"])
