"""The public face: `import ropd` stays curated and light, and the layers only import downward."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import ropd

SRC = Path(ropd.__file__).parent

PUBLIC = {
    "AnswerVerdicts", "ConfigError", "Criterion", "Group", "GroupResult", "GroupScorer",
    "InputError", "JudgeError", "JudgeUnavailable", "LimitsConfig", "RoleConfig", "RopdError",
    "Rubric", "RunStopped", "ScorerConfig", "StoreError", "TJudgeConfig", "TJudgeScorer",
    "TeacherStore", "TraceStore", "__version__", "score_groups", "weighted_score",
}  # fmt: skip

# Lower layers never import higher ones (not even lazily inside a function).
LAYERS: list[set[str]] = [
    {"errors", "redact", "rubric", "text", "jsonparse", "prompts", "sqlite", "progress", "ranking"},
    {"config_file"},
    {"llm"},
    {"reward", "data"},
    {"teacher", "io", "traces", "run_config", "session"},
    {"score_file", "integrations", "testing"},
    {"train", "eval", "report", "analysis", "plan"},
    {"cli", "__main__"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
# Upward imports kept on purpose, each with its reason.
UPWARD = {
    # `GroupScorer.open(config)`, the one-scorer convenience of the library API, delegates to
    # the one opener (`Session.open`) instead of opening a second way
    ("reward/base.py", "ropd.run_config"),
    ("reward/base.py", "ropd.session"),
}


def test_the_public_names_are_exactly_the_promised_ones() -> None:
    assert set(ropd.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(ropd, name) is not None


def test_importing_ropd_loads_no_heavy_stack() -> None:
    heavy = ("torch", "trl", "transformers", "datasets", "openai", "httpx", "llama_cpp")
    code = (
        f"import sys, ropd; print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_error_is_a_ropd_error_and_a_standard_one() -> None:
    assert issubclass(ropd.InputError, ValueError) and issubclass(ropd.ConfigError, ValueError)
    assert issubclass(ropd.JudgeError, RuntimeError) and issubclass(ropd.StoreError, RuntimeError)
    raised = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name.endswith(("Error", "Exception")):
                raised.append(f"{path.relative_to(SRC)}:{node.name}")
    module_errors = {}
    import importlib

    for item in raised:
        rel, name = item.split(":")
        module = "ropd." + rel.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        cls = getattr(importlib.import_module(module), name)
        if issubclass(cls, BaseException):
            module_errors[item] = issubclass(cls, ropd.RopdError)
    assert module_errors and all(module_errors.values()), [
        k for k, v in module_errors.items() if not v
    ]


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every `ropd.*` module imported by `path`, at any depth, with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(node.lineno, n) for n in names if n == "ropd" or n.startswith("ropd.")]
    return found


def _area(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_no_import_runs_from_a_lower_layer_up() -> None:
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if rel.name == "__init__.py" and rel.parent == Path("."):
            continue  # the public face re-exports from every layer
        here = rel.parts[0].removesuffix(".py")
        assert here in RANK, f"{rel}: add its area to LAYERS"
        for line, module in _imports(path):
            there = _area(module)
            if there is None or there == here:
                continue
            assert there in RANK, f"{rel}:{line}: unknown area {there!r}"
            if RANK[there] > RANK[here] and (str(rel), module) not in UPWARD:
                problems.append(f"{rel}:{line} imports {module} (layer {here} < {there})")
    assert not problems, "\n".join(problems)


def test_llm_and_reward_import_no_fakes() -> None:
    for area in ("llm", "reward"):
        for path in (SRC / area).rglob("*.py"):
            assert not [m for _, m in _imports(path) if m.startswith("ropd.testing")], path


def test_no_import_cycles_between_modules() -> None:
    """Module-level imports (the ones that run at import time) form no cycle."""
    paths = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        paths[".".join(rel.parts).removesuffix(".__init__")] = path
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        deps = set()
        for node in ast.parse(path.read_text()).body:  # top level: function imports run later
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:  # `from pkg import submodule` imports the submodule
                    sub = f"{node.module}.{alias.name}"
                    deps.add(sub if sub in paths else node.module)
            elif isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
        graph[name] = {d for d in deps if d.startswith("ropd.")}
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in graph.get(node, ()):
            if dep == node or dep not in graph:
                continue
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep) :] + [dep] if dep in stack else [node, dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])
