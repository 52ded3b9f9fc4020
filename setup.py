"""Build of the optional compiled PackBits walk (everything else is in pyproject.toml).

``calcscope.imaging._packbits`` checks RLE Lossless segments about 30 times faster than
the pure-Python walk it mirrors; when it cannot be built (no compiler, no ``Python.h``)
the install goes on without it and the Python walk is used.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "calcscope.imaging._packbits",
            sources=["src/calcscope/imaging/_packbits.c"],
            optional=True,
        )
    ]
)
