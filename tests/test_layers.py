"""The shape of the code: packages only import packages below them, modules import in no cycle,
and no script or test edits sys.path (the package is installed)."""

import ast
import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
# Lowest first: a package may import its own modules and those of packages on its level or below.
LAYERS = (
    ("errors",), ("utils",), ("config", "config_flags"), ("data", "metrics"), ("text", "patches"), ("records", "feature_cache"),
    ("demo",), ("masking", "model"), ("pretrained", "dataloaders"), ("alignment",),
    ("training",), ("tasks",), ("evaluation",), ("serving", "search", "experiment"),
    ("commands",),
)
LEVEL = {package: level for level, packages in enumerate(LAYERS) for package in packages}


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(REPO_ROOT).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _kaleido_imports(path: pathlib.Path) -> set[str]:
  """The kaleido modules `path` imports (a `from package import module` names the module)."""
  imported = set()
  for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kaleido"):
      for alias in node.names:
        candidate = f"{node.module}.{alias.name}"
        path_stem = REPO_ROOT / candidate.replace(".", "/")
        is_module = path_stem.with_suffix(".py").exists() or (path_stem / "__init__.py").exists()
        imported.add(candidate if is_module else node.module)
    elif isinstance(node, ast.Import):
      imported.update(a.name for a in node.names if a.name.startswith("kaleido"))
  return imported


def _graph() -> dict[str, set[str]]:
  return {_module_name(path): _kaleido_imports(path)
          for path in sorted((REPO_ROOT / "kaleido").rglob("*.py"))}


def _package(module: str) -> str:
  return module.split(".")[1] if "." in module else ""


def test_every_package_has_a_layer():
  packages = {_package(module) for module in _graph()} - {""}
  assert packages == set(LEVEL), packages ^ set(LEVEL)


def test_imports_only_point_down():
  upward = [f"{module} -> {target}" for module, targets in _graph().items()
            for target in targets
            if _package(module) and LEVEL[_package(target)] > LEVEL[_package(module)]]
  assert not upward, upward


def test_no_import_cycle():
  graph = _graph()
  state: dict[str, str] = {}

  def visit(module: str, path: list[str]) -> None:
    state[module] = "open"
    for target in graph.get(module, ()):
      if state.get(target) == "open":
        pytest.fail("import cycle: " + " -> ".join(path[path.index(target):] + [target]))
      if target not in state:
        visit(target, path + [target])
    state[module] = "done"

  for module in graph:
    if module not in state:
      visit(module, [module])


def test_nothing_edits_sys_path():
  edits = [str(path.relative_to(REPO_ROOT)) for path in REPO_ROOT.rglob("*.py")
           if ".git" not in path.parts and "sys.path" in path.read_text(encoding="utf-8")
           and path != pathlib.Path(__file__).resolve()]
  assert not edits, edits


def test_the_layer_table_names_real_packages():
  for package in LEVEL:
    assert (REPO_ROOT / "kaleido" / package).is_dir() or (
        REPO_ROOT / "kaleido" / f"{package}.py").is_file(), package
  assert os.path.isfile(REPO_ROOT / "pyproject.toml")


def test_console_scripts_name_the_commands_and_the_scripts_run_them():
  import tomllib  # pylint: disable=g-import-not-at-top
  scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
  assert {"kaleido-train", "kaleido-evaluate", "kaleido-prepare", "kaleido-index",
          "kaleido-search", "kaleido-export"} <= set(scripts)
  for target in scripts.values():
    module, _, function = target.partition(":")  # not imported: two commands' flags would clash
    tree = ast.parse((REPO_ROOT / (module.replace(".", "/") + ".py")).read_text())
    assert function in {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    # The script of the same name at the top of the repository runs that command.
    name = module.rpartition(".")[2]
    script = next(REPO_ROOT.glob(f"*/{name}.py"), None) or REPO_ROOT / f"{name}.py"
    assert f"from kaleido.commands import {name}" in script.read_text(), script
