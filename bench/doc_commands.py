"""The commands README.md and docs/*.md show a user, found without a list, with the docs' own marks
of those a 2-core CPU cannot run.

A command is a line of a fenced `bash` block (continuation lines joined, `# comments` dropped), a
fenced `python` block (one snippet), or an inline span in the prose that starts with `python `,
`python3 ` or `make `. A fenced block with no language (a layout, printed output) is not one.
Marks are HTML comments, invisible where the markdown is rendered:

    <!-- test-docs: skip REASON -->            the line before a fenced block: the whole block
    <!-- test-docs: skip "PREFIX" REASON -->   anywhere in a file: its commands that are PREFIX or
                                               start with PREFIX and a space
"""

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
                   re.S | re.M)
MARK = re.compile(r"<!--\s*test-docs:\s*skip\s+(?:\"(?P<prefix>[^\"]+)\"\s+)?(?P<reason>.*?)\s*-->", re.S)
INLINE = re.compile(r"`((?:python3? |make )[^`]+)`")
SHELL, PYTHON = ("bash", "sh", "shell"), ("python", "py")
COMMENT = re.compile(r"(^|\s+)#(\s.*)?$")
# written as a synopsis, not a command: <placeholder>, [--optional ...] / [key=value ...], an ellipsis
NOT_LITERAL = re.compile(r"<[A-Za-z][^>]*>|\s\[(?:-|[\w.]+=)|\.\.\.")


@dataclass
class Command:
    file: str
    line: int
    kind: str  # shell | python
    text: str
    skip: str = ""  # the docs' reason; empty: run it

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def doc_files(repo: Path) -> list[Path]:
    return [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]


def shell_commands(body: str) -> list[tuple[int, str]]:
    """(line offset, command) per logical line of a shell block: continuations joined, comments and
    blank lines dropped."""
    commands, pending, start = [], "", 0
    for offset, raw in enumerate(body.splitlines()):
        line = COMMENT.sub("", raw).rstrip() if not raw.rstrip().endswith("\\") else raw.rstrip()
        if not pending:
            start = offset
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        text = (pending + line.strip()).strip()
        pending = ""
        if text:
            commands.append((start, text))
    return commands


def _block_mark(text: str, fence_start: int) -> str | None:
    """The reason of a block mark on the last non-blank line before the fence (None: no mark)."""
    before = text[:fence_start].rstrip().rsplit("\n", 1)[-1]
    mark = MARK.search(before)
    return mark.group("reason") if mark and not mark.group("prefix") else None


def discover(path: Path, name: str) -> list[Command]:
    """Every command of one markdown file, in order, each with its skip reason if marked."""
    text = path.read_text()
    prefixes = [(m.group("prefix"), m.group("reason")) for m in MARK.finditer(text) if m.group("prefix")]
    found, prose = [], text
    for fence in FENCE.finditer(text):
        lang, body = fence.group("lang"), textwrap.dedent(fence.group("body"))
        line = text.count("\n", 0, fence.start()) + 2  # the block's first line
        prose = prose[:fence.start()] + re.sub(r"[^\n]", " ", fence.group(0)) + prose[fence.end():]
        block_skip = _block_mark(text, fence.start())
        if lang in SHELL:
            found += [Command(name, line + offset, "shell", cmd, block_skip or "")
                      for offset, cmd in shell_commands(body)]
        elif lang in PYTHON:
            found.append(Command(name, line, "python", body, block_skip or ""))
    prose = MARK.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), prose)  # a mark's reason is no command
    for span in INLINE.finditer(prose):
        found.append(Command(name, prose.count("\n", 0, span.start()) + 1, "shell",
                             " ".join(span.group(1).split())))
    for command in found:
        if not command.skip and command.kind == "shell":
            command.skip = next((why for prefix, why in prefixes if starts_with(command.text, prefix)), "")
    return sorted(found, key=lambda c: c.line)


def starts_with(text: str, prefix: str) -> bool:
    """`prefix` as whole words: "make test" marks `make test`, not `make test-docs`."""
    return text == prefix or text.startswith(prefix + " ")


def discover_all(repo: Path) -> list[Command]:
    return [c for path in doc_files(repo) for c in discover(path, str(path.relative_to(repo)))]


def not_literal(command: Command) -> str:
    """Why a shell command cannot run as written (a synopsis), or ''."""
    if command.kind != "shell":
        return ""
    found = NOT_LITERAL.search(command.text)
    return f"not a command as written ({found.group(0).strip()!r}): make it literal or mark it skipped" \
        if found else ""
