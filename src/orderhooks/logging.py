"""Logging: structlog, configured once per process, to standard error.

Two formats (docs/configuration.md, `ORDERHOOKS_LOG_FORMAT`): `console`, pretty lines for a
terminal, and `json`, one JSON object per line for a log collector. Records of the
standard library (uvicorn, aiohttp, asyncpg) go through the same pipeline, so a
process writes one format only.

Keys and secrets are never logged (docs/api.md, authentication): a processor masks every field whose
name says it holds one, whoever logs it, another masks API keys, portal link tokens and
webhook secrets wherever they appear in a text (the access log's request line shows the
path and query as requested), the written line is masked so once more (what only the
renderer spells out: the console's traceback, texts inside lists and mappings), and
tracebacks never show local variables.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

LogFormat = Literal["console", "json"]

REDACTED = "[redacted]"
# Field names whose values are credentials; matched as substrings of the lowered name.
SECRET_FIELD_MARKERS = ("key", "secret", "token", "password", "authorization", "cookie")
# Fields that contain a marker but name an identifier or a count, not a credential.
SAFE_FIELDS = frozenset({"key_id", "keys", "event"})
# API keys (`ohk_`), portal link tokens (`ohp_`) and webhook secrets (`whsec_`), as they are
# spelled in a text; the prefix is kept, so a line still says what was there.
CREDENTIAL_PATTERN = re.compile(r"\b(ohk_|ohp_)[A-Za-z0-9_-]+|\b(whsec_)[A-Za-z0-9+/=%]+")
CREDENTIAL_MARKS = ("ohk_", "ohp_", "whsec_")
# Libraries that talk too much at info for a service log.
QUIET_LOGGERS = ("asyncio", "aiohttp.access", "multipart", "hpack")

_configured_format: str | None = None


def redact_secrets(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Mask the values of fields that hold keys or secrets."""
    for name in list(event_dict):
        lowered = name.lower()
        if lowered in SAFE_FIELDS:
            continue
        if any(marker in lowered for marker in SECRET_FIELD_MARKERS):
            event_dict[name] = REDACTED
    return event_dict


def _masked(match: re.Match[str]) -> str:
    return f"{match.group(1) or match.group(2)}{REDACTED}"


def mask_credentials(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Mask keys, portal tokens and secrets inside the record's texts (its message first)."""
    for name, value in event_dict.items():
        if isinstance(value, str) and ("oh" in value or "whsec_" in value):
            event_dict[name] = CREDENTIAL_PATTERN.sub(_masked, value)
    return event_dict


def mask_rendered(logger: WrappedLogger, method_name: str, rendered: Any) -> Any:
    """Mask keys, portal tokens and secrets in the line as written: the console renderer
    formats a traceback itself, after every processor, and no processor looks inside a
    list or a mapping."""
    if isinstance(rendered, str) and any(mark in rendered for mark in CREDENTIAL_MARKS):
        return CREDENTIAL_PATTERN.sub(_masked, rendered)
    return rendered


def _drop_color_message(
    logger: WrappedLogger, method_name: str, event_dict: EventDict
) -> EventDict:
    # uvicorn adds an ANSI-coloured copy of each message; the renderers colour on their own.
    event_dict.pop("color_message", None)
    return event_dict


def _json_dumps(value: MutableMapping[str, Any], **_: Any) -> str:
    return orjson.dumps(value, default=str).decode("utf-8")


def _renderer(log_format: LogFormat, stream: TextIO) -> Processor:
    if log_format == "json":
        return structlog.processors.JSONRenderer(serializer=_json_dumps)
    tty = stream.isatty()
    return structlog.dev.ConsoleRenderer(
        colors=tty,
        # Locals of a frame may hold a key or a request body: never show them.
        exception_formatter=(
            structlog.dev.RichTracebackFormatter(show_locals=False)
            if tty
            else structlog.dev.plain_traceback
        ),
    )


def configure_logging(
    log_format: str = "json", level: str = "info", stream: TextIO | None = None
) -> None:
    """Route structlog and the standard library's logging to `stream` (stderr) in one format."""
    global _configured_format
    fmt: LogFormat = "console" if log_format == "console" else "json"
    out = stream if stream is not None else sys.stderr
    numeric_level = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_color_message,
        redact_secrets,
    ]
    if fmt == "json":
        shared.append(structlog.processors.format_exc_info)
    # Last, so that the formatted message and a formatted traceback are searched too.
    shared.append(mask_credentials)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _renderer(fmt, out),
            mask_rendered,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric_level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn's own handlers would print a second, differently formatted copy.
        uv_logger = logging.getLogger(name)
        uv_logger.handlers.clear()
        uv_logger.propagate = True
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(numeric_level, logging.WARNING))
    _configured_format = fmt


def configured_format() -> str | None:
    """The format configured in this process, or None before `configure_logging`."""
    return _configured_format


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger named `name` (e.g. `orderhooks.runner`)."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
