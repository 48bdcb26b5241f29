"""English text that steerkit can train an SAE on without any hub: deterministic, with provenance.

Sources, in this order of size:

1. **The Python Language Reference** as shipped inside every CPython, in `pydoc_data.topics`
   (the text `help("assert")` shows). Copyright the Python Software Foundation, under the
   PSF License Agreement (PSF-2.0), which allows copying, modification and redistribution.
2. **Docstrings of the Python standard library** (module, class and function docstrings read
   from the source files with `ast`, nothing is imported). Same copyright and licence.
3. **The texts of a registered dataset** (`sentiment-offline` by default: the project's own
   sentiment sentences, Apache-2.0 like steerkit), read through the dataset registry
   (`Dataset.all_texts`), when a plugin registers that dataset; otherwise skipped.

Only prose is kept: paragraphs are re-flowed onto one line, and a paragraph is dropped if it is
indented (code, grammar rules), holds doctest prompts, is a heading or a list of parameters, has
fewer than `MIN_WORDS` words or too few alphabetic words. The texts are shuffled with a fixed
seed so that any prefix mixes the sources. The result depends only on the Python version (and on
the dataset's texts); `Corpus.digest` identifies it.
"""

from __future__ import annotations

import ast
import hashlib
import logging
import random
import re
import sys
import sysconfig
from collections.abc import Iterable, Iterator
from pathlib import Path

import attrs

__all__ = [
    "MIN_WORDS",
    "Corpus",
    "Source",
    "offline_corpus",
    "prose_paragraphs",
]

logger = logging.getLogger(__name__)

#: Shortest paragraph kept, in words.
MIN_WORDS = 8
#: Smallest share of words made of letters (drops tables, signatures, paths).
MIN_ALPHA_SHARE = 0.7
#: Seed of the shuffle that mixes the sources.
SHUFFLE_SEED = 0

_SKIP_DIRS = frozenset(
    {
        "test",
        "tests",
        "idle_test",
        "idlelib",
        "lib2to3",
        "site-packages",
        "dist-packages",
        "ensurepip",
        "turtledemo",
        "__pycache__",
    }
)
_HEADING_UNDERLINE = re.compile(r"^[\*=\-~^\"'`#+]{3,}$")
_FIELD_LINE = re.compile(r"^\s*[:@]?\w+(\s*\(.*\))?\s*(:|--)\s")
_WORD = re.compile(r"\S+")
_ALPHA_WORD = re.compile(r"^[(\"']?[A-Za-z][A-Za-z'\-]*[.,;:!?)\"']*$")


@attrs.frozen
class Source:
    """Where a share of the corpus comes from, under which licence, and how much of it."""

    name: str
    licence: str
    detail: str
    n_texts: int
    n_characters: int


@attrs.frozen
class Corpus:
    """The training texts (shuffled) and their provenance; `digest` is a SHA-256 of the texts."""

    texts: tuple[str, ...]
    sources: tuple[Source, ...]
    digest: str

    @property
    def n_characters(self) -> int:
        return sum(len(text) for text in self.texts)

    def provenance(self) -> dict[str, object]:
        """A JSON-ready description (stored next to an SAE trained on this corpus)."""
        return {
            "digest": self.digest,
            "n_texts": len(self.texts),
            "n_characters": self.n_characters,
            "python": sys.version.split()[0],
            "sources": [attrs.asdict(source) for source in self.sources],
        }


def _is_prose(lines: list[str]) -> bool:
    if not lines or any(line[:1].isspace() for line in lines):
        return False  # indented: code, grammar, a nested list
    if any(line.lstrip().startswith((">>>", "...", "|", "+-")) for line in lines):
        return False
    if len(lines) >= 2 and _HEADING_UNDERLINE.match(lines[-1].strip()):
        return False
    if sum(bool(_FIELD_LINE.match(line)) for line in lines) > len(lines) / 2:
        return False  # "name: description" parameter lists
    words = _WORD.findall(" ".join(lines))
    if len(words) < MIN_WORDS:
        return False
    alpha = sum(bool(_ALPHA_WORD.match(word)) for word in words)
    if alpha < MIN_ALPHA_SHARE * len(words):
        return False
    text = " ".join(words)
    return text[-1] in ".!?" and text[0].isupper()


def prose_paragraphs(text: str) -> list[str]:
    """The prose paragraphs of a plain-text document, each re-flowed onto one line.

    Paragraphs are separated by blank lines; see the module docstring for what is dropped.
    """
    paragraphs: list[str] = []
    block: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.strip():
            block.append(line.rstrip())
            continue
        if block and _is_prose(block):
            paragraphs.append(" ".join(_WORD.findall(" ".join(block))))
        block = []
    return paragraphs


def _reference_texts() -> list[str]:
    """The Python Language Reference topics, one text per topic (prose paragraphs only)."""
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some distributions strip pydoc_data
        logger.warning("pydoc_data is not available: the Language Reference is left out")
        return []
    texts = []
    for name in sorted(topics):
        paragraphs = prose_paragraphs(topics[name])
        if paragraphs:
            texts.append("\n\n".join(paragraphs))
    return texts


def _stdlib_files() -> Iterator[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.rglob("*.py")):
        if not _SKIP_DIRS.intersection(path.relative_to(root).parts):
            yield path


def _docstrings(tree: ast.Module) -> Iterator[str]:
    nodes: Iterable[ast.AST] = ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=True)
            if doc:
                yield doc


def _docstring_texts() -> list[str]:
    """Prose paragraphs of the standard library's docstrings, one text per docstring."""
    texts = []
    for path in _stdlib_files():
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        for doc in _docstrings(tree):
            paragraphs = prose_paragraphs(doc)
            if paragraphs:
                texts.append("\n\n".join(paragraphs))
    return texts


def _dataset_texts(name: str) -> tuple[list[str], str]:
    """The texts of the registered dataset `name` (`Dataset.all_texts`) and their licence; no
    texts when no plugin registers it or it cannot list its texts."""
    import steerkit

    try:
        dataset = steerkit.get_host().registry("dataset").get(name)()
        texts = [str(text).strip() for text in dataset.all_texts()]
    except (steerkit.UnknownPluginError, NotImplementedError, steerkit.SteerkitError) as e:
        logger.warning("the texts of dataset %r are left out of the corpus: %s", name, e)
        return [], "unknown"
    return [text for text in texts if text], dataset.licence or "unknown"


#: The dataset whose texts join the corpus by default: the project's own sentences.
CORPUS_DATASET = "sentiment-offline"


def offline_corpus(*, dataset: str | None = CORPUS_DATASET) -> Corpus:
    """The offline training corpus: every source's texts, deduplicated and shuffled (seed 0);
    `dataset`: a registered dataset whose texts join it (None: none)."""
    groups = [
        (
            "python-language-reference",
            "PSF-2.0",
            "pydoc_data.topics of CPython " + sys.version.split()[0],
            _reference_texts(),
        ),
        (
            "python-stdlib-docstrings",
            "PSF-2.0",
            "docstrings of CPython " + sys.version.split()[0] + "'s standard library (via ast)",
            _docstring_texts(),
        ),
    ]
    if dataset is not None:
        texts, licence = _dataset_texts(dataset)
        groups.append(
            (
                f"dataset-{dataset}",
                licence,
                f"Dataset.all_texts() of {dataset!r}, through the dataset registry",
                texts,
            )
        )
    seen: set[str] = set()
    texts: list[str] = []
    sources: list[Source] = []
    for name, licence, detail, group in groups:
        kept = []
        for text in group:
            if text not in seen:
                seen.add(text)
                kept.append(text)
        if kept:
            sources.append(Source(name, licence, detail, len(kept), sum(map(len, kept))))
            texts.extend(kept)
    random.Random(SHUFFLE_SEED).shuffle(texts)
    digest = hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()
    return Corpus(texts=tuple(texts), sources=tuple(sources), digest=digest)
