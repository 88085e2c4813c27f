from setuptools import find_packages, setup

setup(
    name="propetl-adapters",
    version="0.1.0",
    description="ProPETL (One Network, Many Masks, ACL 2023) as an extension of AdapterHub's adapters library",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["propetl_adapters", "propetl_adapters.*"]),
    python_requires=">=3.9",
    install_requires=[
        "torch==2.13.0",
        "adapters==1.3.0",
        "transformers==4.57.6",
        "huggingface-hub>=0.34,<1.0",
        "accelerate>=0.26,<1.13",
        "datasets>=3.0,<4.1",
        "safetensors>=0.4",
        "numpy",
        "scikit-learn>=1.3",
        "scipy>=1.10",
        "tqdm>=4.60",
    ],
    extras_require={
        "plots": ["matplotlib>=3.7"],
        "generation": ["rouge-score>=0.1.2", "sacrebleu>=2.3"],
        "test": ["pytest>=7"],
    },
    entry_points={"console_scripts": [
        "propetl-storage=propetl_adapters.storage:main",
        "propetl-table=propetl_adapters.glue.results_table:main",
        "propetl-plot=propetl_adapters.plots:main",
    ]},
)
