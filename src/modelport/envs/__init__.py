"""Environments: parse conda/requirements files into specs and build them as cached virtualenvs.

Models run in their own virtualenv so that their dependencies never meet modelport's; builds are
cached by content hash because they are slow and most deployments reuse an environment.
"""

from modelport.envs.builder import BuildResult, build_env
from modelport.envs.spec import EnvSpec, normalize_python, parse_spec, parse_spec_file

__all__ = [
    "BuildResult",
    "EnvSpec",
    "build_env",
    "normalize_python",
    "parse_spec",
    "parse_spec_file",
]
