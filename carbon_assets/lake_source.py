"""Which API a lake was filled from: one lake holds one API's data.

`{lake root}/source.json` records the API's base URL and whether it is the offline emulator:

    {"api_base_url": "https://api.carbonintensity.org.uk", "emulator": false,
     "recorded_at": "2024-02-01T10:00:00+00:00"}

Bronze checks it before it sends any request (`check_lake_source`) and records it once it has
stored its first day (`record_lake_source`), so the demo's synthetic days, or another API's,
never pass for this API's. A lake filled before the file existed is known by its day files'
source URLs. No Dagster, no network.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import zlib
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

import msgspec

from carbon_assets import settings
from carbon_assets.storage import Storage, storage_at

SOURCE_FILE = "source.json"
# A day file's source URL is {base URL}/regional/intensity/{from}/{to}.
REGIONAL_PATH = "/regional/"
# Day files read, newest first, to find the source of a lake without source.json.
DAY_FILES_TRIED = 5


@dataclass(frozen=True)
class LakeSource:
    api_base_url: str
    emulator: bool
    recorded_at: str

    def __str__(self) -> str:
        return f"{self.api_base_url}{' (the emulator)' if self.emulator else ''}"


class LakeSourceMismatch(RuntimeError):
    """The lake holds another API's data than the one this run would fetch from."""


def normalised(api_base_url: str) -> str:
    """A base URL as compared: no surrounding space or trailing slash, scheme and host in lower
    case (they are case-insensitive; the path is not)."""
    url = api_base_url.strip().rstrip("/")
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path}"


def read_lake_source(lake: Storage | str) -> LakeSource | None:
    """The lake's recorded source; else the source of its newest readable day file; None for a
    lake with neither (a new lake). ValueError (one line) when source.json cannot be read."""
    lake = storage_at(lake)
    path = lake.location(SOURCE_FILE)
    try:
        text = lake.read_bytes(SOURCE_FILE)
    except FileNotFoundError:
        return _source_of_day_files(lake / "bronze")
    try:
        fields = json.loads(text)
        return LakeSource(
            api_base_url=str(fields["api_base_url"]),
            emulator=bool(fields.get("emulator", False)),
            recorded_at=str(fields.get("recorded_at", "")),
        )
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(
            f"The lake's source file {path} cannot be read ({error!r}): restore it, or remove it "
            "if every day file of the lake comes from the API this run uses"
        ) from None


def check_lake_source(lake: Storage | str, api_base_url: str) -> None:
    """Raise LakeSourceMismatch (one line) when the lake holds data from another API."""
    lake = storage_at(lake)
    source = read_lake_source(lake)
    if source is None or normalised(source.api_base_url) == normalised(api_base_url):
        return
    raise LakeSourceMismatch(
        f"The lake {lake.url} holds data from {source}, but this run fetches from "
        f"{api_base_url}; one lake holds one API's data: set {settings.LAKE_URL} (or "
        f"{settings.DATA_DIR}) to another folder for this API, or set {settings.API_BASE_URL} "
        f"back to {source.api_base_url}"
    )


def record_lake_source(lake: Storage | str, api_base_url: str, emulator: bool) -> LakeSource:
    """Write the lake's source.json (replacing any), atomically."""
    source = LakeSource(
        api_base_url=normalised(api_base_url),
        emulator=emulator,
        recorded_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    text = json.dumps(asdict(source), indent=2) + "\n"
    storage_at(lake).write_bytes(SOURCE_FILE, text.encode())
    return source


class _Source(msgspec.Struct):
    url: str = ""
    emulator: bool = False
    fetched_at: str | None = None


class _DaySources(msgspec.Struct):
    sources: list[_Source] = []


_DAY_SOURCES = msgspec.json.Decoder(_DaySources)


def _source_of_day_files(bronze: Storage) -> LakeSource | None:
    """The source of the newest day file that names one (the records are skipped, not built);
    a damaged file is passed over (bronze sets it aside when it reads it)."""
    keys = sorted(bronze.glob("[0-9][0-9][0-9][0-9]/*.json.gz"), key=lambda k: k.rpartition("/")[2])
    for key in reversed(keys[-DAY_FILES_TRIED:]):
        try:
            sources = _DAY_SOURCES.decode(gzip.decompress(bronze.read_bytes(key))).sources
        except (OSError, EOFError, zlib.error, msgspec.DecodeError):
            continue
        for source in sources:
            if REGIONAL_PATH in source.url:
                return LakeSource(
                    api_base_url=source.url.split(REGIONAL_PATH, 1)[0],
                    emulator=source.emulator,
                    recorded_at=source.fetched_at or "",
                )
    return None
