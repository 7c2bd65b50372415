"""Errors about what the user gave (a run table, a spec, a path): one clear message each."""


class InputError(ValueError):
    """Bad user input. The message names the row/field (or option) and what was expected."""


class InputWarning(UserWarning):
    """Something about the user's input worth knowing (the work goes on); the CLI prints it on one line."""


class ComputeColumnWarning(InputWarning):
    """A table's compute column C is not 6ND (kept as given; fits count 6ND). The planner's own cost column (a
    WSD branch's cool-down plus trunk tokens) differs by design, so its refits leave this one out."""


def one_line(text: str, limit: int = 600) -> str:
    """``text`` on one line (newlines folded into '; '), at most ``limit`` characters: a longer line
    loses its middle, so that what it is about (the start) and the advice (the end) both stay."""
    parts = [p.strip() for p in str(text).replace("\r", "\n").split("\n") if p.strip()]
    line = "; ".join(parts)
    if len(line) <= limit:
        return line
    head = (limit - 5) * 2 // 3
    return line[:head] + " ... " + line[len(line) - (limit - 5 - head):]


def describe_file(path) -> str:
    """What a file looks like from its first bytes, for messages about a file of the wrong kind:
    'empty (0 bytes)', 'a SQLite database', 'a Parquet file', 'an HDF5/netCDF file', 'a ZIP archive',
    'text', text in another encoding (UTF-16, Latin-1: it says so) or 'binary data'."""
    from pathlib import Path

    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError as err:
        return f"unreadable ({err.strerror})"
    if size == 0:
        return "empty (0 bytes)"
    for magic, kind in ((b"SQLite format 3\x00", "a SQLite database"), (b"PAR1", "a Parquet file"),
                        (b"\x89HDF", "an HDF5/netCDF file"), (b"CDF", "a netCDF3 file"), (b"PK", "a ZIP archive"),
                        (b"\x1f\x8b", "a gzip file")):
        if head.startswith(magic):
            return kind
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16 text (save it as UTF-8)"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 4:  # not just a character cut at the end of the sample
            if b"\x00" not in head and all(b >= 32 or b in b"\t\r\n" for b in head):
                return (f"text in an encoding other than UTF-8 (byte 0x{head[err.start]:02x} at offset {err.start}; "
                        "save it as UTF-8)")
            return "binary data"
    return "text"
