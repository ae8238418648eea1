"""What the repository says about itself agrees with its code: the Python it needs."""

import ast
import re
import sys
import tomllib

from conftest import ROOT

# APIs added after Python 3.10, with the version that added them: those a module here might reach for.
NEWER = {
    "hashlib.file_digest": (3, 11), "tomllib": (3, 11), "datetime.UTC": (3, 11), "enum.StrEnum": (3, 11),
    "enum.verify": (3, 11), "typing.Self": (3, 11), "typing.LiteralString": (3, 11), "typing.Never": (3, 11),
    "typing.assert_never": (3, 11), "typing.reveal_type": (3, 11), "typing.Required": (3, 11),
    "typing.NotRequired": (3, 11), "asyncio.TaskGroup": (3, 11), "asyncio.timeout": (3, 11),
    "contextlib.chdir": (3, 11), "operator.call": (3, 11), "ExceptionGroup": (3, 11), "BaseExceptionGroup": (3, 11),
    "itertools.batched": (3, 12), "typing.override": (3, 12), "calendar.Month": (3, 12), "math.sumprod": (3, 12),
    "warnings.deprecated": (3, 13), "copy.replace": (3, 13), "typing.ReadOnly": (3, 13), "typing.TypeIs": (3, 13),
}
SKIP = {".venv", ".git", "node_modules", "shared", "web", "data"}


def python_files():
    return sorted(p for p in ROOT.rglob("*.py") if not SKIP & set(p.relative_to(ROOT).parts))


def floor() -> tuple[int, int]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        spec = tomllib.load(f)["project"]["requires-python"]
    m = re.fullmatch(r">=\s*(\d+)\.(\d+)", spec.strip())
    assert m, f"requires-python {spec!r}: expected '>=X.Y'"
    return int(m[1]), int(m[2])


def newer_apis(tree: ast.AST) -> set[str]:
    """The names in NEWER that a module uses: ``import m``/``import m as a`` then ``a.name``, ``from m
    import name``, ``import tomllib``, and the builtins."""
    modules, found = {}, set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:  # import a.b binds a to a; import a.b as c binds c to a.b
                top = alias.name.split(".")[0]
                modules[alias.asname or top] = alias.name if alias.asname else top
                found.add(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.update({node.module, *(f"{node.module}.{alias.name}" for alias in node.names)})
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
            found.add(f"{modules[node.value.id]}.{node.attr}")
        elif isinstance(node, ast.Name):
            found.add(node.id)
    return found & NEWER.keys()


def test_requires_python_is_what_the_code_needs():
    """Issue 37, item 6: pyproject said >=3.10 (README: "Python 3.10+") while vae/folders.py calls
    hashlib.file_digest (3.11). Every module (the package, the app, tests, benchmarks) parses under the
    floor's grammar (``ast.parse(feature_version=...)``: ``except*``, ``type X = ...``, ``def f[T]``), uses
    no API of NEWER added after it, and the README says the same floor."""
    at_least = floor()
    used = {}
    for path in python_files():
        source = path.read_text()
        ast.parse(source, filename=str(path), feature_version=at_least)  # a newer syntax is a SyntaxError
        for api in newer_apis(ast.parse(source)):
            used.setdefault(api, []).append(str(path.relative_to(ROOT)))
    assert "vae/folders.py" in used.get("hashlib.file_digest", []), "the scan no longer finds what it was written for"
    too_new = {api: where for api, where in used.items() if NEWER[api] > at_least}
    assert not too_new, f"requires-python >={at_least[0]}.{at_least[1]} but these need more: {too_new}"
    readme = (ROOT / "README.md").read_text()
    assert f"(Python {at_least[0]}.{at_least[1]}+;" in readme and not re.search(r"Python 3\.\d+\+", readme.replace(
        f"Python {at_least[0]}.{at_least[1]}+", "")), "README's 'Run the app' line says another Python"
    assert sys.version_info[:2] >= at_least  # this interpreter, too
